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
# come back. In the middle of the burst the on-premises app is stopped for OUTAGE seconds and
# started again: its return must not overload it (it restarts reporting no load while
# resolvers still send its users to the cloud). Everything is on loopback, bounded by the
# ramp, and stopped by PID at the end.
#   OUTAGE_AT=70 OUTAGE=20 examples/burst-demo.sh   # the default; OUTAGE=0 skips it
set -euo pipefail
cd "$(dirname "$0")/.."
RAMP=${RAMP:-0s:10,20s:10,40s:100,130s:100,150s:10,210s:10}
OUTAGE_AT=${OUTAGE_AT:-70}
OUTAGE=${OUTAGE:-20}

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
# The two apps in two processes, so that the on-premises one can be stopped alone.
"$bin" demo-endpoints stack-hub >"$log/onprem.log" 2>&1 &
onprem=$!
pids+=($onprem)
"$bin" demo-endpoints azure >"$log/cloud.log" 2>&1 &
pids+=($!)
# Wait (bounded) until Meridian answers and sees both apps Online.
for _ in $(seq 1 50); do
  if curl -sf 127.0.0.1:8053/v1/status 2>/dev/null | grep -q '"status": "Online"'; then break; fi
  sleep 0.2
done

# Every 5 s: the burst state, share and the primary's utilisation as Meridian sees them.
(
  for _ in $(seq 1 60); do
    sleep 5
    curl -sf 127.0.0.1:8053/v1/status 2>/dev/null | python3 -c '
import json, sys
p = json.load(sys.stdin)["profiles"][0]
b, e = p["burst"], p["endpoints"][0]
u = e.get("load", {}).get("utilisation")
print("  status: %-9s share %.2f  %s %-9s utilisation %s" % (b["state"], b["share"], e["name"], e["status"], "-" if u is None else "%.2f" % u))
' || true
  done
) &
pids+=($!)
if [ "$OUTAGE" -gt 0 ]; then
  (
    sleep "$OUTAGE_AT"
    echo "  -- stopping the on-premises app for ${OUTAGE}s"
    kill "$onprem"
    sleep "$OUTAGE"
    echo "  -- starting the on-premises app again"
    "$bin" demo-endpoints stack-hub >>"$log/onprem.log" 2>&1 &
    echo $! >"$log/onprem.pid"
    wait
  ) &
  pids+=($!)
fi

echo "ramp: $RAMP (requests per second over time)"
"$bin" demo-load --ramp "$RAMP" --report 5s
if [ -f "$log/onprem.pid" ]; then pids+=($(cat "$log/onprem.pid")); fi
echo
echo "burst transitions:"
grep -E "burst state changed|burst event" "$log/meridian.log" | sed -E 's/^[^ ]+ +//' || true
