#!/usr/bin/env bash
# `npm run bench:kannel` (last part of `npm run bench`): this gateway beside Kannel 1.4.5, side by side on the
# same provider simulator and load driver (../shared/bench/compare.sh: K G K G K G, fresh processes and database
# per run, N=20000 at C=50 by default). Prints per-pair rates and ratios and one summary line; exits 1 when the
# gateway's end-to-end median (signed `delivered` webhooks) is below Kannel's (DLRs at its dlr-url) or a message
# was lost. Both sides send unthrottled: the provider account's default 100 sends/s
# (PROVIDER_SEND_RATE_PER_SECOND) is lifted for the run, as Kannel has no such limit here.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED_BENCH_DIR:-../shared/bench}
if [ ! -x "$SHARED/compare.sh" ]; then
  echo "bench:kannel skipped: $SHARED/compare.sh not found (set SHARED_BENCH_DIR)"
  exit 0
fi
if ! command -v bearerbox >/dev/null; then
  echo "bench:kannel skipped: Kannel is not installed (apt-get install -y kannel)"
  exit 0
fi
[ -d "$SHARED/node_modules" ] || (cd "$SHARED" && npm ci --no-audit --no-fund >/dev/null)
export PROVIDER_SEND_RATE_PER_SECOND=${PROVIDER_SEND_RATE_PER_SECOND:-0}
export GATEWAY_DIR=$PWD
exec "$SHARED/compare.sh" "${PAIRS:-3}"
