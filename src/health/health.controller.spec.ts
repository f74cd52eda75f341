import type { HealthCheckResult } from '@nestjs/terminus';
import { contractChecks } from './health.controller';

const upAll: HealthCheckResult['details'] = {
  database: { status: 'up' },
  migrations: { status: 'up' },
  shutdown: { status: 'up' },
};

describe('readiness body (terminus result → contract)', () => {
  it('ok when every check is up and nothing drains', () => {
    expect(contractChecks({ status: 'ok', info: upAll, error: {}, details: upAll }, false)).toEqual({
      database: 'ok',
      migrations: 'ok',
    });
  });

  it('says draining when the draining indicator is down', () => {
    const details = { ...upAll, shutdown: { status: 'down' as const, message: 'draining' } };
    expect(contractChecks({ status: 'error', info: {}, error: {}, details }, true)).toEqual({
      database: 'ok',
      migrations: 'ok',
      shutdown: 'draining',
    });
  });

  // A probe that started just before SIGTERM: its draining check ran while still up, and terminus finished
  // it as `shutting_down`. A clean-clone CI run saw this body without `shutdown` (dispatch-processes test).
  it('says draining for a probe that terminus finished as shutting_down although its draining check was up', () => {
    expect(contractChecks({ status: 'shutting_down', info: upAll, error: {}, details: upAll }, false)).toEqual({
      database: 'ok',
      migrations: 'ok',
      shutdown: 'draining',
    });
  });

  it('says draining when the indicator went down after the probe read it', () => {
    expect(contractChecks({ status: 'ok', info: upAll, error: {}, details: upAll }, true)).toEqual({
      database: 'ok',
      migrations: 'ok',
      shutdown: 'draining',
    });
  });

  it('a database that does not answer vouches for no migrations', () => {
    const details = { database: { status: 'down' as const }, migrations: { status: 'up' as const } };
    expect(contractChecks({ status: 'error', info: {}, error: {}, details }, false)).toEqual({
      database: 'unreachable',
      migrations: 'unknown',
    });
  });
});
