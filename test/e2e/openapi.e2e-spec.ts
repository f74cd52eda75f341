import { startTestApp, TestApp } from '../support/app';

type Schema = {
  $ref?: string;
  type?: string;
  properties?: Record<string, unknown>;
  items?: Schema;
  allOf?: Schema[];
};
type Operation = {
  description?: string;
  parameters?: Array<{ name: string; in: string; description?: string; schema?: Schema }>;
  requestBody?: { content?: Record<string, { examples?: Record<string, unknown>; example?: unknown }> };
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
};
type Document = {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
};

/** Follows `$ref`s (and single-element `allOf`, the plugin's way of referencing) to the schema itself. */
function resolve(doc: Document, schema: Schema | undefined, seen = new Set<string>()): Schema | undefined {
  let s = schema;
  while (s?.$ref || (s?.allOf && s.allOf.length === 1 && !s.properties)) {
    if (s.allOf) {
      s = s.allOf[0];
      continue;
    }
    const name = s.$ref!.replace('#/components/schemas/', '');
    if (seen.has(name)) throw new Error(`circular $ref ${name}`);
    seen.add(name);
    s = doc.components.schemas[name];
    if (!s) return undefined;
  }
  return s;
}

function operations(doc: Document): Array<[string, Operation]> {
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]): [string, Operation] => [`${method.toUpperCase()} ${path}`, op]),
  );
}

/** What is wrong with an operation's success response(s), if anything. */
function successProblems(doc: Document, op: Operation): string[] {
  const problems: string[] = [];
  const success = Object.entries(op.responses ?? {}).filter(([code]) => /^2\d\d$/.test(code));
  if (success.length === 0) problems.push('no 2xx response');
  for (const [code, response] of success) {
    if (code === '204') continue; // No Content has no body by definition
    const schema = response.content?.['application/json']?.schema;
    if (!schema) {
      problems.push(`${code}: no application/json schema`);
      continue;
    }
    const resolved = resolve(doc, schema);
    if (!resolved) problems.push(`${code}: unresolvable ${JSON.stringify(schema)}`);
    else if (
      (resolved.type === 'object' || resolved.type === undefined) &&
      !Object.keys(resolved.properties ?? {}).length
    )
      problems.push(`${code}: object schema without properties (${JSON.stringify(schema)})`);
    else if (resolved.type === 'array') {
      const items = resolve(doc, resolved.items);
      if (!items || (items.type === 'object' && !Object.keys(items.properties ?? {}).length))
        problems.push(`${code}: array of objects without properties`);
    }
  }
  return problems;
}

describe('the OpenAPI document is complete', () => {
  let t: TestApp;
  let doc: Document;
  beforeAll(async () => {
    t = await startTestApp();
    doc = (await t.http.get('/docs-json')).body as Document;
  });
  afterAll(async () => {
    await t.close();
  });

  it('every operation declares its success schema, with properties ($refs resolved)', () => {
    const incomplete = operations(doc).flatMap(([name, op]) => successProblems(doc, op).map((p) => `${name} ${p}`));
    expect(incomplete).toEqual([]);
  });

  it('the walk itself catches an empty schema, a missing one and an empty $ref', () => {
    const fake: Document = { paths: {}, components: { schemas: { Empty: { type: 'object', properties: {} } } } };
    expect(successProblems(fake, { responses: { '200': {} } })).toEqual(['200: no application/json schema']);
    expect(
      successProblems(fake, {
        responses: { '200': { content: { 'application/json': { schema: { $ref: '#/components/schemas/Empty' } } } } },
      }),
    ).toHaveLength(1);
    expect(successProblems(fake, { responses: { '400': {} } })).toEqual(['no 2xx response']);
  });

  it('every schema in components has properties (the plugin saw every DTO, e.g. MessageDto)', () => {
    const empty = Object.entries(doc.components.schemas)
      .filter(([, s]) => s.type === 'object' && !Object.keys(s.properties ?? {}).length)
      .map(([name]) => name);
    expect(empty).toEqual([]);
    expect(Object.keys(doc.components.schemas.MessageDto.properties!)).toEqual(
      expect.arrayContaining(['id', 'to', 'status', 'segments', 'encoding', 'price', 'createdAt']),
    );
  });

  it('every operation but login documents 401, and every error response is problem+json with the Problem schema', () => {
    const missing: string[] = [];
    for (const [name, op] of operations(doc)) {
      const errors = Object.entries(op.responses ?? {}).filter(([code]) => /^[45]\d\d$/.test(code));
      if (!errors.some(([code]) => code.startsWith('4'))) missing.push(`${name}: no 4xx`);
      if (name !== 'POST /v1/auth/login' && !errors.some(([code]) => code === '401')) missing.push(`${name}: no 401`);
      for (const [code, response] of errors) {
        const schema = response.content?.['application/problem+json']?.schema;
        if (schema?.$ref !== '#/components/schemas/ProblemDto') missing.push(`${name} ${code}: not problem+json`);
      }
    }
    expect(missing).toEqual([]);
    expect(Object.keys(doc.components.schemas.ProblemDto.properties!)).toEqual(
      expect.arrayContaining(['type', 'title', 'status', 'detail', 'code', 'errors']),
    );
  });

  it('the batch documents no 403: a suspended tenant gets its items back in rejected (tenant_suspended), a single send 403', () => {
    const ops = Object.fromEntries(operations(doc));
    expect(Object.keys(ops['POST /v1/messages'].responses ?? {})).toContain('403');
    expect(Object.keys(ops['POST /v1/messages/batch'].responses ?? {})).not.toContain('403');
    expect(ops['POST /v1/messages/batch'].description ?? '').toMatch(/tenant_suspended/);
  });

  it('send, batch and top-up carry request examples', () => {
    const examples = (name: string) => {
      const op = Object.fromEntries(operations(doc))[name];
      return Object.keys(op?.requestBody?.content?.['application/json']?.examples ?? {});
    };
    expect(examples('POST /v1/messages').length).toBeGreaterThan(0);
    expect(examples('POST /v1/messages/batch').length).toBeGreaterThan(0);
    expect(examples('POST /v1/admin/tenants/{id}/topups').length).toBeGreaterThan(0);
  });

  it('every operation that takes a date or time says which calendar it means', () => {
    const dateParam = /^(from|to|start|end|month|sendAt|createdFrom|createdTo)$/;
    const vague = operations(doc)
      .filter(
        ([name, op]) =>
          (op.parameters ?? []).some((p) => p.in === 'query' && dateParam.test(p.name)) ||
          name.endsWith('/topups') ||
          name === 'POST /v1/messages',
      )
      .filter(([, op]) => !/Asia\/Jakarta/.test(op.description ?? ''))
      .map(([name]) => name);
    expect(vague).toEqual([]);
  });
});
