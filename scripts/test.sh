#!/usr/bin/env bash
# The one test command (README: `npm test`): installs, builds, checks, and runs every test on real
# PostgreSQL, then the date-dependent suites again across the UTC/Asia-Jakarta day boundary.
# Ends with a plain `N passed, M failed` line computed from jest's JSON reports (a failed check
# step counts as one failed test).
set -uo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || { echo "0 passed, 1 failed"; exit 1; }   # its `prepare` step builds
else
  npx nest build || { echo "0 passed, 1 failed"; exit 1; }
fi

reports=$(mktemp -d)
status=0
checks_failed=0

# Static checks first: each failing check counts as one failed test.
for check in typecheck lint format:check; do
  echo "== npm run $check"
  npm run --silent "$check" || { checks_failed=$((checks_failed + 1)); status=1; }
done

# --forceExit and a time limit: a handle leaked by one test must end as a failure, not hang CI.
timeout 3600 node --experimental-vm-modules node_modules/jest/bin/jest.js --runInBand --forceExit --json \
  --outputFile="$reports/main.json" "$@" || status=1

if [ $# -eq 0 ]; then   # a filtered run (`npm test -- path`) skips the extra passes
  bash scripts/day-boundary.sh "$reports" || status=1
fi

node -e '
  const fs = require("fs"), path = require("path");
  const dir = process.argv[1];
  let passed = 0, failed = Number(process.argv[2]);
  if (!fs.existsSync(path.join(dir, "main.json"))) failed += 1;   // jest itself did not finish
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    const r = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
    const failedSuites = r.testResults.filter((s) => s.status === "failed" && s.assertionResults.length === 0).length;
    passed += r.numPassedTests;
    failed += r.numFailedTests + failedSuites;
  }
  console.log(`${passed} passed, ${failed} failed`);
' "$reports" "$checks_failed" || { echo "0 passed, 1 failed"; exit 1; }
rm -rf "$reports"
exit $status
