import 'reflect-metadata';
import { DataSource, DataSourceOptions } from 'typeorm';
import { migrations } from '../../migrations';
import { entities } from './entities';

/** Options shared by the app and the TypeORM CLI. Never `synchronize`: the schema is the migrations. */
export function dataSourceOptions(url: string, poolSize = 20): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities,
    migrations,
    migrationsRun: false,
    migrationsTransactionMode: 'each',
    synchronize: false,
    uuidExtension: 'pgcrypto',
    installExtensions: false,
    logging: false,
    extra: { max: poolSize, connectionTimeoutMillis: 10000, application_name: 'gerbang' },
  };
}

// Used by `npm run migration:*` (typeorm CLI). The app builds its own DataSource in DatabaseModule.
export default new DataSource(
  dataSourceOptions(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/gerbang'),
);
