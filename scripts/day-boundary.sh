#!/usr/bin/env bash
# Issue 12: the suites whose outcome depends on the date or the time of day, run again with this
# process's wall clock started where UTC and Asia/Jakarta (UTC+7) disagree, and on month ends.
# test/support/fake-now.cjs moves `Date` (and with it the injected Clock) to GERBANG_FAKE_NOW.
# Writes one jest JSON report per instant into the folder given as $1; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: day-boundary.sh REPORT_DIR}
mkdir -p "$out"

INSTANTS=(
  2026-11-30T16:59:59Z # 23:59:59 in Jakarta, still 30 Nov in both calendars
  2026-11-30T17:00:00Z # 00:00:00 on 1 Dec in Jakarta, 30 Nov in UTC: the month differs too
  2026-11-30T23:59:59Z # 06:59:59 on 1 Dec in Jakarta
  2028-02-29T17:00:00Z # leap day in UTC, 1 Mar in Jakarta
)
# Validity and grace, forfeiture, statements and usage by Jakarta day/month, provider report days,
# scheduling (sendAt), idempotency-key expiry, Jakarta date parsing and formatting.
SUITES=(
  test/e2e/billing.e2e-spec.ts
  test/e2e/admin-api.e2e-spec.ts
  test/e2e/usage-statements.e2e-spec.ts
  test/e2e/idempotency-money.e2e-spec.ts
  test/dlr/inbound.e2e-spec.ts
  test/provider/wallet.e2e-spec.ts
  test/integration/ledger-race.test.ts
  test/messaging/messaging.e2e-spec.ts
  test/provider/contract.test.ts
  test/provider/sandbox.test.ts
  src/billing/
  test/billing/
  src/sandbox/sandbox-state.spec.ts
  src/provider/client/parsers.spec.ts
)

status=0
for at in "${INSTANTS[@]}"; do
  echo "== day boundary: wall clock from $at"
  GERBANG_FAKE_NOW=$at GERBANG_FAKE_NOW_FROM=$(date +%s%3N) timeout 900 node --experimental-vm-modules node_modules/jest/bin/jest.js --runInBand --forceExit --silent \
    --json --outputFile="$out/day-boundary-$at.json" "${SUITES[@]}" 2>&1 | grep -E '^(Tests:|  ●.*›)' || true
  # No report (jest killed by the time limit) is a failure too: the summary counts one for it.
  node -e 'const r=require(process.argv[1]); process.exit(r.success ? 0 : 1)' "$out/day-boundary-$at.json" 2>/dev/null || {
    status=1
    [ -f "$out/day-boundary-$at.json" ] || echo '{"numPassedTests":0,"numFailedTests":1,"testResults":[],"success":false}' > "$out/day-boundary-$at.json"
  }
done
exit $status
