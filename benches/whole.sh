#!/usr/bin/env bash
# Whole-server benchmark: Meridian, NSD, gdnsd and a no-work reflector (the floor), each
# pinned to one core, driven by `meridian loadgen` (and, for comparison, by dnsperf) from the
# other core, for four names:
#
#   static     api.app.example.com A      a zone record
#   weighted   canary.app.example.com A   9:1 weighted (NSD: the two records, static)
#   failover   fo.app.example.com A       priority, TCP-probed, the primary down (NSD: static)
#   geo        geo.app.example.com A      geographic, three client subnets sent as ECS (no NSD)
#
#   benches/whole.sh                        # 1 pass, 8 s saturation runs, 5 s fixed-rate runs
#   PASSES=5 DURATION=4 FIXED=2 benches/whole.sh   # medians of 5 passes (about 12 minutes)
#   PASSES=25 DURATION=2 FIXED=0 benches/whole.sh  # many short passes, no fixed-rate runs:
#                                           # tighter ratios on a noisy host (about 20 minutes)
#   SERVERS="reflector meridian gdnsd" NAMES=static benches/whole.sh   # a subset, to compare
#   PERF_DIR=/tmp/prof benches/whole.sh     # also `perf record` the server's core in each
#                                           # saturation run: PERF_DIR/server-name-pass.data
#   RESULTS=runs.tsv benches/whole.sh       # also keep every run's figures, one line each
#
# Per server and name it reports: qps at saturation (closed loop, 200 in flight), the busy time
# of the server's core per answered query (`core_busy`: user, system, irq and softirq from
# /proc/stat, so the kernel's work for the server's packets is counted, not only the
# process's own CPU time), p99 latency at saturation and at fixed rates of 20k and 50k qps
# (FIXED=0 skips those), and the ratios of the core time to the reflector's, NSD's and
# gdnsd's. Then the generators against the reflector: loadgen and dnsperf, each from one
# core, with both cores' busy share.
#
# Every server runs for the whole benchmark, each on its own port (PORT, PORT+1, ...), all
# pinned to the same core and idle while another is driven. A pass drives one name at a time
# on every server in turn (the order turns each pass), so the reflector's run that a ratio is
# taken against is from the same minute: a ratio is computed per pass and the median is
# reported with the middle half of the passes' ratios. On a shared VM the core's cost per
# packet drifts by 10-15 % over minutes, which ratios of runs minutes apart would carry whole;
# even adjacent runs differ by several percent, so many short passes pin a ratio down better
# than a few long ones.
#
# Installs dnsperf, nsd and gdnsd from Debian's packages if missing (policy-rc.d keeps their
# daemons from starting). Loopback only; every run is bounded by its duration; everything
# started here is stopped by PID.
set -euo pipefail

PASSES=${PASSES:-1}
DURATION=${DURATION:-8}
FIXED=${FIXED:-5}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-5393}
PROBE_PORT=${PROBE_PORT:-5481}
declare -A port_of=([reflector]=$PORT [meridian]=$((PORT + 1)) [nsd]=$((PORT + 2)) [gdnsd]=$((PORT + 3)))

root=$(cd "$(dirname "$0")/.." && pwd)
zone="$root/zones/app.example.com.zone"

# shellcheck source=benches/install.sh
. "$root/benches/install.sh"
# shellcheck source=benches/core-busy.sh
. "$root/benches/core-busy.sh"
install_missing dnsperf=dnsperf nsd=nsd gdnsd=gdnsd dig=bind9-dnsutils
[ -z "${PERF_DIR:-}" ] || install_missing perf=linux-perf
PATH=$PATH:/usr/sbin

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin meridian --example reflector
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
meridian=${MERIDIAN_BIN:-"$target_dir/release/meridian"}
loadgen="$target_dir/release/meridian"
reflector="$target_dir/release/examples/reflector"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- what each server serves -----------------------------------------------------------------

all_names=(static weighted failover geo)
read -r -a names <<<"${NAMES:-${all_names[*]}}"
declare -A QNAME=([static]=api [weighted]=canary [failover]=fo [geo]=geo)
for n in "${all_names[@]}"; do echo "${QNAME[$n]}.app.example.com A" >"$work/$n.txt"; done
# Germany (GEO-EU), the United States (GEO-NA), Japan (WORLD) in the demo GeoIP database.
printf '127.0.1.0/24\n127.0.0.0/24\n127.0.3.0/24\n' >"$work/ecs.txt"

# The failover pair's probe target: only the secondary (127.0.0.42) accepts connections, so
# both servers' probes find the primary down and answer the secondary.
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.42", int(sys.argv[1]))); s.listen(64); s.settimeout(1)
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try: s.accept()[0].close()
    except OSError: pass
' "$PROBE_PORT" 7200 &
pids+=($!)
# Listening before any server starts, so that no first probe finds the secondary down too.
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.42/$PROBE_PORT") 2>/dev/null && break
  sleep 0.1
done

cat >"$work/meridian.toml" <<EOF
[server]
listen = ["127.0.0.1:${port_of[meridian]}"]
udp_workers = 1
[admin]
listen = "127.0.0.1:0"
[geoip]
database = "$root/geoip/demo.mmdb"
[[zone]]
name = "app.example.com."
file = "$zone"

[[profile]]
name = "canary"
method = "weighted"
ttl = 10
[[profile.endpoint]]
name = "stable"
address = "127.0.0.31"
weight = 9
[[profile.endpoint]]
name = "next"
address = "127.0.0.32"
weight = 1

[[profile]]
name = "fo"
method = "priority"
ttl = 10
[profile.monitor]
protocol = "tcp"
port = $PROBE_PORT
interval = "2s"
timeout = "1s"
tolerated_failures = 0
[[profile.endpoint]]
name = "primary"
address = "127.0.0.41"
priority = 1
[[profile.endpoint]]
name = "secondary"
address = "127.0.0.42"
priority = 2

[[profile]]
name = "geo"
method = "geographic"
ttl = 60
[[profile.endpoint]]
name = "europe"
address = "127.0.0.21"
geo = ["GEO-EU"]
[[profile.endpoint]]
name = "north-america"
address = "127.0.0.22"
geo = ["GEO-NA"]
[[profile.endpoint]]
name = "global"
address = "127.0.0.23"
geo = ["WORLD"]
EOF

# NSD: the same zone with the managed names as plain records.
cp "$zone" "$work/nsd.zone"
printf 'canary 10 IN A 127.0.0.31\ncanary 10 IN A 127.0.0.32\nfo 10 IN A 127.0.0.42\n' >>"$work/nsd.zone"
# shellcheck source=benches/nsd-conf.sh
. "$root/benches/nsd-conf.sh"
nsd_conf "$work" "${port_of[nsd]}" "$work/nsd.zone"

# gdnsd: its own weighted, multifo (with a tcp_connect monitor) and geoip plugins.
mkdir -p "$work/gdnsd/zones" "$work/gdnsd/run" "$work/gdnsd/state"
cp "$zone" "$work/gdnsd/zones/app.example.com"
printf 'canary 10 DYNA weighted!canary\nfo 10 DYNA multifo!fo\ngeo 60 DYNA geoip!geo\n' \
  >>"$work/gdnsd/zones/app.example.com"
cat >"$work/gdnsd/config" <<EOF
options => {
  listen => [ 127.0.0.1:${port_of[gdnsd]} ]
  udp_threads => 1
  tcp_threads => 1
  run_dir => $work/gdnsd/run
  state_dir => $work/gdnsd/state
}
service_types => {
  web => { plugin => tcp_connect, port => $PROBE_PORT, interval => 2, timeout => 1, up_thresh => 1, down_thresh => 1 }
}
plugins => {
  weighted => { canary => { stable => [ 127.0.0.31, 9 ], next => [ 127.0.0.32, 1 ] } }
  multifo => { fo => { service_types => web, primary => 127.0.0.41, secondary => 127.0.0.42 } }
  geoip => {
    maps => { demo => {
      geoip2_db => $root/geoip/demo.mmdb
      datacenters => [ europe, north-america, global ]
      map => { EU => [ europe ], NA => [ north-america ], default => [ global ] }
    } }
    resources => { geo => { map => demo, dcmap => { europe => 127.0.0.21, north-america => 127.0.0.22, global => 127.0.0.23 } } }
  }
}
EOF

start_server() { # name; sets $pid (not through $(...): the server would hold its pipe open)
  case $1 in
    reflector) taskset -c "$SERVER_CPU" "$reflector" "127.0.0.1:${port_of[reflector]}" 3600 2>/dev/null & ;;
    meridian) taskset -c "$SERVER_CPU" "$meridian" serve -c "$work/meridian.toml" --log warn & ;;
    nsd) taskset -c "$SERVER_CPU" nsd -d -c "$work/nsd.conf" & ;;
    gdnsd) taskset -c "$SERVER_CPU" gdnsd -c "$work/gdnsd" start 2>"$work/gdnsd.log" & ;;
  esac
  pid=$!
}

# Ready when the failover name already answers the secondary (probes have run); the
# reflector only has to echo.
wait_ready() { # name
  local want=127.0.0.42 port=${port_of[$1]}
  [ "$1" = reflector ] && want=""
  for _ in $(seq 1 150); do
    got=$(dig @127.0.0.1 -p "$port" fo.app.example.com +short +time=1 +tries=1 2>/dev/null || true)
    if [ -z "$want" ] && dig @127.0.0.1 -p "$port" x. +time=1 +tries=1 >/dev/null 2>&1; then return 0; fi
    [ -n "$want" ] && [ "$got" = "$want" ] && return 0
    sleep 0.1
  done
  echo "$1 did not become ready on port $port" >&2
  return 1
}

tck=$(getconf CLK_TCK)

results="$work/results.tsv" # pass server name mode qps core_us p99_us lost server_busy client_busy

run_loadgen() { # pass server name mode extra-args...
  local pass=$1 server=$2 name=$3 mode=$4
  shift 4
  local ecs=()
  [ "$name" = geo ] && ecs=(--ecs-file "$work/ecs.txt")
  local s0 c0 s1 c1 secs
  local perf_pid=""
  if [ -n "${PERF_DIR:-}" ] && [ "$mode" = saturation ]; then
    mkdir -p "$PERF_DIR"
    perf record -q -C "$SERVER_CPU" -e cpu-clock -g -o "$PERF_DIR/$server-$name-$pass.data" \
      -- sleep "$DURATION" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  s0=$(core_busy "$SERVER_CPU"); c0=$(core_busy "$CLIENT_CPU")
  taskset -c "$CLIENT_CPU" "$loadgen" loadgen -d "$work/$name.txt" -s "127.0.0.1:${port_of[$server]}" \
    "${ecs[@]}" --json "$@" >"$work/out.json"
  s1=$(core_busy "$SERVER_CPU"); c1=$(core_busy "$CLIENT_CPU")
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  python3 - "$work/out.json" "$pass" "$server" "$name" "$mode" $((s1 - s0)) $((c1 - c0)) "$tck" >>"$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
pass_, server, name, mode = sys.argv[2:6]
sb, cb, tck = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
secs = r["seconds"]
core_us = sb / tck / r["answered"] * 1e6 if r["answered"] else float("nan")
print("\t".join(map(str, [pass_, server, name, mode, r["qps"], core_us, r["latency_us"]["p99"],
                          r["lost"] + r["mismatched"], sb / tck / secs, cb / tck / secs])))
PY
}

run_dnsperf() { # pass server name
  local pass=$1 server=$2 name=$3 s0 c0 s1 c1
  s0=$(core_busy "$SERVER_CPU"); c0=$(core_busy "$CLIENT_CPU")
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${port_of[$server]}" -d "$work/$name.txt" -l "$DURATION" \
    -c 4 -q 100 >"$work/dnsperf.out" 2>&1
  s1=$(core_busy "$SERVER_CPU"); c1=$(core_busy "$CLIENT_CPU")
  python3 - "$work/dnsperf.out" "$pass" "$server" "$name" $((s1 - s0)) $((c1 - c0)) "$tck" "$DURATION" >>"$results" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
pass_, server, name = sys.argv[2:5]
sb, cb, tck, secs = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), float(sys.argv[8])
def stat(label):
    m = re.search(re.escape(label) + r":\s+([0-9.]+)", text)
    return float(m.group(1)) if m else float("nan")
done, lost, qps = stat("Queries completed"), stat("Queries lost"), stat("Queries per second")
core_us = sb / tck / done * 1e6 if done else float("nan")
print("\t".join(map(str, [pass_, server, name, "dnsperf", qps, core_us, "nan", lost, sb / tck / secs, cb / tck / secs])))
PY
}

read -r -a servers <<<"${SERVERS:-reflector meridian nsd gdnsd}"
for s in "${servers[@]}"; do
  case $s in reflector | meridian | nsd | gdnsd) ;; *) echo "unknown server in SERVERS: $s" >&2; exit 2 ;; esac
done
for n in "${names[@]}"; do
  [ -n "${QNAME[$n]:-}" ] || { echo "unknown name in NAMES: $n (one of ${all_names[*]})" >&2; exit 2; }
done
echo "whole server: $PASSES pass(es), ${DURATION}s saturation + ${FIXED}s at 20k and 50k qps (0: none) per name;" \
  "server on CPU $SERVER_CPU, generator on CPU $CLIENT_CPU" >&2
declare -A pid_of
for server in "${servers[@]}"; do
  start_server "$server"
  pids+=("$pid")
  pid_of[$server]=$pid
  wait_ready "$server"
done
for pass in $(seq 1 "$PASSES"); do
  # The order of servers turns each pass, so what drift there is within a name's runs
  # spreads evenly.
  turn=$(( (pass - 1) % ${#servers[@]} ))
  order=("${servers[@]:$turn}" "${servers[@]:0:$turn}")
  echo "pass $pass: ${order[*]}" >&2
  for name in "${names[@]}"; do
    for server in "${order[@]}"; do
      [ "$server" = nsd ] && [ "$name" = geo ] && continue
      run_loadgen "$pass" "$server" "$name" saturation -q 200 -l "${DURATION}s"
      [ "$FIXED" = 0 ] && continue
      run_loadgen "$pass" "$server" "$name" 20k -Q 20000 -l "${FIXED}s"
      run_loadgen "$pass" "$server" "$name" 50k -Q 50000 -l "${FIXED}s"
    done
  done
  for server in "${order[@]}"; do run_dnsperf "$pass" "$server" static; done
done
for server in "${servers[@]}"; do
  kill -0 "${pid_of[$server]}" 2>/dev/null || echo "$server had exited before the end of its runs" >&2
done
[ -z "${RESULTS:-}" ] || cp "$results" "$RESULTS"

python3 - "$results" <<'PY'
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
by_pass = {}  # (server, name, mode, pass) -> core µs/query
for line in open(sys.argv[1]):
    p, server, name, mode, qps, core, p99, lost, sbusy, cbusy = line.rstrip("\n").split("\t")
    rows[(server, name, mode)].append(tuple(map(float, (qps, core, p99, lost, sbusy, cbusy))))
    by_pass[(server, name, mode, p)] = float(core)
def med(key, i):
    v = [r[i] for r in rows.get(key, [])]
    return statistics.median(v) if v else float("nan")
def paired(s, other, n):
    """The ratio of core time per query to `other`'s in the same pass: the median, and the
    quartiles (the middle half of the passes)."""
    v = [c / by_pass[(other, n2, m, p)] for (s2, n2, m, p), c in by_pass.items()
         if (s2, n2, m) == (s, n, "saturation") and by_pass.get((other, n2, m, p))]
    if not v:
        return "–"
    if len(v) == 1:
        return f"{v[0]:.2f}"
    q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    return f"{statistics.median(v):.2f} ({q1:.2f}–{q3:.2f})"
def us(x):
    return "–" if x != x else f"{x:.0f}"
servers = ["reflector", "meridian", "nsd", "gdnsd"]
names = ["static", "weighted", "failover", "geo"]
print("| server | name | qps (saturation) | core µs/query | × reflector | × NSD | × gdnsd | p99 µs saturation | p99 µs @20k | p99 µs @50k | lost |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for s in servers:
    for n in names:
        k = (s, n, "saturation")
        if k not in rows:
            continue
        lost = sum(r[3] for m in ("saturation", "20k", "50k") for r in rows.get((s, n, m), []))
        print(f"| {s} | {n} | {med(k, 0):,.0f} | {med(k, 1):.2f} | {paired(s, 'reflector', n)} | "
              f"{paired(s, 'nsd', n)} | {paired(s, 'gdnsd', n)} | {us(med(k, 2))} | "
              f"{us(med((s, n, '20k'), 2))} | {us(med((s, n, '50k'), 2))} | {lost:.0f} |")
print("\n(The ratios are per pass, against the other server's run of the same name in that pass:")
print("median, and in brackets the middle half of the passes' ratios, first to third quartile.)")
print()
print("| generator, static name | server | qps | server core busy | generator core busy | core µs/query |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for s in servers:
    for mode, label in (("saturation", "meridian loadgen"), ("dnsperf", "dnsperf")):
        k = (s, "static", mode)
        if k in rows:
            print(f"| {label} | {s} | {med(k, 0):,.0f} | {med(k, 4):.0%} | {med(k, 5):.0%} | {med(k, 1):.2f} |")
g, d = med(("reflector", "static", "saturation"), 0), med(("reflector", "static", "dnsperf"), 0)
print(f"\nloadgen / dnsperf against the reflector: {g / d:.2f}× the queries per second")
PY
