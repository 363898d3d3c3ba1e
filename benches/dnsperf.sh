#!/usr/bin/env bash
# Whole-server benchmark: Meridian and NSD serving the same zone on loopback, side by side.
#
#   benches/dnsperf.sh              # 10 s per server
#   DURATION=30 benches/dnsperf.sh
#
# Each server is pinned to core 0 with one worker; dnsperf is pinned to core 1. On a 2-core
# machine dnsperf saturates its own core at about NSD's speed, so queries per second alone
# cannot separate fast servers: the figure that does is the server's CPU time per query, read
# from /proc/PID/stat (the server and all its child processes) before and after each run.
#
# Installs dnsperf and nsd from Debian's packages if they are missing. Loopback only; every run
# is bounded by DURATION; the servers started here are stopped by PID.
set -euo pipefail

DURATION=${DURATION:-10}
MERIDIAN_PORT=${MERIDIAN_PORT:-5390}
NSD_PORT=${NSD_PORT:-5391}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

root=$(cd "$(dirname "$0")/.." && pwd)
zone="$root/zones/app.example.com.zone"

# shellcheck source=benches/install.sh
. "$root/benches/install.sh"
# shellcheck source=benches/core-busy.sh
. "$root/benches/core-busy.sh"
install_missing dnsperf=dnsperf nsd=nsd
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# MERIDIAN_BIN runs another build (e.g. an older commit's, for a before/after comparison).
meridian=${MERIDIAN_BIN:-"$target_dir/release/meridian"}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The query mix: answers, negative answers, a CNAME chain, a wildcard and a referral.
cat >"$work/queries.txt" <<'EOF'
api.app.example.com A
api.app.example.com AAAA
mail.app.example.com A
app.example.com MX
portal.app.example.com A
anything.user.app.example.com A
nope.app.example.com A
api.app.example.com TXT
www.eu.app.example.com A
app.example.com NS
EOF

cat >"$work/meridian.toml" <<EOF
[server]
listen = ["127.0.0.1:$MERIDIAN_PORT"]
udp_workers = 1
[[zone]]
name = "app.example.com."
file = "$zone"
EOF

# shellcheck source=benches/nsd-conf.sh
. "$root/benches/nsd-conf.sh"
nsd_conf "$work" "$NSD_PORT" "$zone"
nsd-checkconf "$work/nsd.conf"

# Sum of user+system CPU ticks of a process and all its descendants.
cpu_ticks() {
  local total=0 p
  for p in $(descendants "$1"); do
    if [ -r "/proc/$p/stat" ]; then
      # Fields 14 and 15 (utime, stime), counted after the ")" that ends the command name.
      total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    fi
  done
  echo "$total"
}
descendants() {
  echo "$1"
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do descendants "$c"; done
}

wait_ready() { # port
  for _ in $(seq 1 100); do
    if dig @127.0.0.1 -p "$1" api.app.example.com +time=1 +tries=1 >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "server on port $1 did not answer" >&2
  return 1
}

tck=$(getconf CLK_TCK)

declare -A RESULT

measure() { # name pid port
  local name=$1 pid=$2 port=$3
  wait_ready "$port"
  local before after core_before core_after
  before=$(cpu_ticks "$pid")
  core_before=$(core_busy "$SERVER_CPU")
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries.txt" \
    -l "$DURATION" -v >"$work/$name.out" 2>&1
  after=$(cpu_ticks "$pid")
  core_after=$(core_busy "$SERVER_CPU")
  python3 - "$work/$name.out" "$((after - before))" "$tck" "$name" "$((core_after - core_before))" <<'PY'
import re, sys
path, ticks, tck, name, core = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
text = open(path).read()
def latency(line):
    # "> NOERROR name type 0.000123"; lost queries ("> T name type") have no latency.
    try:
        return float(line.split()[-1]) if line.startswith("> ") else None
    except (ValueError, IndexError):
        return None
lat = sorted(x for x in map(latency, text.splitlines()) if x is not None)
def stat(label):
    m = re.search(re.escape(label) + r":\s+([0-9.]+)", text)
    return float(m.group(1)) if m else float("nan")
completed, lost, qps = stat("Queries completed"), stat("Queries lost"), stat("Queries per second")
avg = stat("Average Latency (s)")
p99 = lat[int(len(lat) * 0.99) - 1] if lat else float("nan")
cpu_us = ticks / tck / completed * 1e6 if completed else float("nan")
core_us = core / tck / completed * 1e6 if completed else float("nan")
print(f"{name} {qps:.0f} {avg*1e6:.1f} {p99*1e6:.1f} {lost:.0f} {cpu_us:.3f} {core_us:.3f}")
PY
}

echo "Meridian vs NSD: ${DURATION}s each, server on CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU" >&2
taskset -c "$SERVER_CPU" "$meridian" serve -c "$work/meridian.toml" --log warn &
mpid=$!
pids+=("$mpid")
line_m=$(measure meridian "$mpid" "$MERIDIAN_PORT")
kill "$mpid"; wait "$mpid" 2>/dev/null || true

taskset -c "$SERVER_CPU" nsd -d -c "$work/nsd.conf" &
npid=$!
pids+=("$npid")
line_n=$(measure nsd "$npid" "$NSD_PORT")
kill "$npid"; wait "$npid" 2>/dev/null || true

python3 - "$line_m" "$line_n" <<'PY'
import sys
rows = [l.split() for l in sys.argv[1:]]
print(f"{'server':<10}{'qps':>10}{'avg µs':>10}{'p99 µs':>10}{'lost':>8}{'CPU µs/query':>14}{'core µs/query':>15}")
for r in rows:
    print(f"{r[0]:<10}{float(r[1]):>10.0f}{float(r[2]):>10.1f}{float(r[3]):>10.1f}{int(float(r[4])):>8}{float(r[5]):>14.3f}{float(r[6]):>15.3f}")
m, n = [list(map(float, r[1:])) for r in rows]
ratio = lambda a, b: a / b if b else float("nan")
print(f"{'ratio M/N':<10}{ratio(m[0], n[0]):>10.2f}{ratio(m[1], n[1]):>10.2f}{ratio(m[2], n[2]):>10.2f}{'':>8}{ratio(m[4], n[4]):>14.2f}{ratio(m[5], n[5]):>15.2f}")
PY
