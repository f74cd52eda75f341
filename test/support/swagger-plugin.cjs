// Wires the @nestjs/swagger CLI plugin into ts-jest so tests see the same OpenAPI metadata as `nest build`.
const plugin = require('@nestjs/swagger/plugin');
module.exports = {
  name: 'nestjs-swagger-transformer',
  version: 1,
  factory: (cs) =>
    plugin.before(
      {
        classValidatorShim: true,
        introspectComments: true,
        dtoFileNameSuffix: ['.dto.ts'],
        controllerFileNameSuffix: ['.controller.ts'],
      },
      cs.program,
    ),
};
