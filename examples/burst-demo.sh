#!/usr/bin/env bash
# Cloud bursting end to end, on one machine, no containers:
#   examples/burst-demo.sh                       # the default 3-minute ramp
#   RAMP="0s:10,10s:10,20s:100,60s:100,70s:10,110s:10" examples/burst-demo.sh
#
# Starts Meridian on the default configuration (127.0.0.1:5353, admin on 127.0.0.1:8053), the
# two demo apps (on-premises 127.0.0.11:8080, public cloud 127.0.0.12:8080, each exporting its
# request rate at /metrics), and a load generator that resolves www.app.example.com through
# Meridian for every request and sends it to the app it was given. As the rate ramps past what
# the on-premises app takes (50 requests/s), answers spill to the public app; as it falls, they
# come back. Everything is on loopback, bounded by the ramp, and stopped by PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
RAMP=${RAMP:-0s:10,20s:10,40s:100,100s:100,120s:10,180s:10}

cargo build --release --quiet
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/meridian
log=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "logs: $log"
}
trap cleanup EXIT

"$bin" serve >"$log/meridian.log" 2>&1 &
pids+=($!)
"$bin" demo-endpoints >"$log/apps.log" 2>&1 &
pids+=($!)
# Wait (bounded) until Meridian answers and sees both apps Online.
for _ in $(seq 1 50); do
  if curl -sf 127.0.0.1:8053/v1/status 2>/dev/null | grep -q '"status": "Online"'; then break; fi
  sleep 0.2
done

echo "ramp: $RAMP (requests per second over time)"
"$bin" demo-load --ramp "$RAMP" --report 5s
echo
echo "burst transitions:"
grep -E "burst state changed|burst event" "$log/meridian.log" | sed -E 's/^[^ ]+ +//' || true
