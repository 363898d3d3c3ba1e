#!/usr/bin/env bash
# Answer sizes, Meridian next to NSD, for the shipped demo zone: the apex NS set, a referral,
# an MX answer with its additional data, the SOA, a negative answer and a CNAME chain. Each
# query is asked with EDNS (1232) and without, and the sizes of the replies are printed side
# by side. Loopback only; both servers are started here and stopped by PID.
#
#   benches/sizes.sh            # builds Meridian (release) first
#   MERIDIAN=path/to/meridian benches/sizes.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v nsd >/dev/null || need+=(nsd)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  # nsd starts its daemon on install unless policy-rc.d forbids it.
  [ -e /usr/sbin/policy-rc.d ] || printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${MERIDIAN:-}" ]; then
  cargo build --release --quiet
  MERIDIAN="${CARGO_TARGET_DIR:-target}/release/meridian"
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

zone="$PWD/zones/app.example.com.zone"
M_PORT=${M_PORT:-15353}
N_PORT=${N_PORT:-15354}

cat >"$work/meridian.toml" <<EOF
[server]
listen = ["127.0.0.1:$M_PORT"]
[admin]
enabled = false
[[zone]]
name = "app.example.com."
file = "$zone"
EOF
# shellcheck source=benches/nsd-conf.sh
. "$PWD/benches/nsd-conf.sh"
# Meridian adds no authority NS to positive answers (minimal responses); so neither does NSD.
nsd_conf "$work" "$N_PORT" "$zone" "  minimal-responses: yes"

"$MERIDIAN" serve --config "$work/meridian.toml" >"$work/meridian.log" 2>&1 &
pids+=($!)
nsd -d -c "$work/nsd.conf" >"$work/nsd.out" 2>&1 &
pids+=($!)

# The size of the reply to one query, as dig reports it.
size() {
  local port=$1
  shift
  dig +tries=1 +time=2 -p "$port" @127.0.0.1 "$@" | sed -n 's/.*MSG SIZE  rcvd: \([0-9]*\).*/\1/p'
}

for _ in $(seq 50); do
  if [ -n "$(size "$M_PORT" app.example.com SOA)" ] && [ -n "$(size "$N_PORT" app.example.com SOA)" ]; then
    break
  fi
  sleep 0.1
done

printf '%-42s %9s %9s\n' "query" "Meridian" "NSD"
while read -r label args; do
  for edns in "+bufsize=1232" "+noedns"; do
    # shellcheck disable=SC2086
    m=$(size "$M_PORT" $args "$edns")
    # shellcheck disable=SC2086
    n=$(size "$N_PORT" $args "$edns")
    printf '%-42s %9s %9s\n' "$label ($edns)" "$m" "$n"
  done
done <<'EOF'
apex-NS app.example.com NS
referral www.eu.app.example.com A
MX app.example.com MX
SOA app.example.com SOA
NXDOMAIN nope.app.example.com A
CNAME-chain portal.app.example.com A
SRV _sip._tcp.app.example.com SRV
EOF
