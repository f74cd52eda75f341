#!/usr/bin/env bash
# The one test command (README: `npm test`): installs, builds, and runs every test on real PostgreSQL.
# Ends with a plain `N passed, M failed` line computed from jest's JSON report.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || { echo "0 passed, 1 failed"; exit 1; }   # its `prepare` step builds
else
  npx nest build || { echo "0 passed, 1 failed"; exit 1; }
fi

report=$(mktemp)
node --experimental-vm-modules node_modules/jest/bin/jest.js --runInBand --json --outputFile="$report" "$@"
status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const failedSuites = r.testResults.filter((s) => s.status === "failed" && s.assertionResults.length === 0).length;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests + failedSuites} failed`);
' "$report" || { echo "0 passed, 1 failed"; exit 1; }
rm -f "$report"
exit $status
