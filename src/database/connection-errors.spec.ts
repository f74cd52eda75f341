import { isConnectionError, isTransientConflict } from './connection-errors';

describe('isConnectionError', () => {
  const sqlstate = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  it.each([
    ['ECONNREFUSED', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5'), { code: 'ECONNREFUSED' })],
    ['ECONNRESET', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })],
    ['57P01 admin_shutdown', sqlstate('57P01', 'terminating connection due to administrator command')],
    ['57P03 cannot_connect_now', sqlstate('57P03', 'the database system is starting up')],
    ['08006', sqlstate('08006')],
    ['Connection terminated', new Error('Connection terminated unexpectedly')],
    ['pool timeout', new Error('timeout exceeded when trying to connect')],
    ['wrapped by TypeORM', Object.assign(new Error('q'), { driverError: sqlstate('57P01') })],
    ['as a cause', new Error('outer', { cause: sqlstate('ECONNREFUSED') })],
    ['AggregateError', new AggregateError([sqlstate('ECONNREFUSED')], 'all failed')],
    // TypeORM, when a transaction's connection died under it and the runner was released
    [
      'runner released',
      Object.assign(new Error('Query runner already released. Cannot run queries anymore.'), {
        name: 'QueryRunnerAlreadyReleasedError',
      }),
    ],
    [
      'runner released, then a query through its manager',
      Object.assign(
        new Error(
          'Database connection provided by a query runner was already released, cannot continue to use its querying methods anymore.',
        ),
        { name: 'QueryRunnerProviderAlreadyReleasedError' },
      ),
    ],
  ])('%s is a connection error', (_, e) => expect(isConnectionError(e)).toBe(true));

  it.each([
    ['unique violation', sqlstate('23505', 'duplicate key value violates unique constraint')],
    ['bad uuid', sqlstate('22P02', 'invalid input syntax for type uuid')],
    ['serialization', sqlstate('40001')],
    ['a bug', new TypeError('x is undefined')],
    ['nothing', undefined],
  ])('%s is not', (_, e) => expect(isConnectionError(e)).toBe(false));
});

describe('isTransientConflict', () => {
  const sqlstate = (code: string) => Object.assign(new Error(code), { code });
  it('deadlock and serialization failure, also wrapped by TypeORM', () => {
    expect(isTransientConflict(sqlstate('40P01'))).toBe(true);
    expect(isTransientConflict(Object.assign(new Error('q'), { driverError: sqlstate('40001') }))).toBe(true);
    expect(isTransientConflict(sqlstate('23505'))).toBe(false);
    expect(isConnectionError(sqlstate('40P01'))).toBe(false);
  });
});
