#!/bin/sh
# Peak and current resident memory (VmHWM, VmRSS) of the release server, on the shipped default configuration
# and with a country-level GeoIP database of 500 000 networks (synthetic: /24s spread over
# 240 countries, about the size of a real country database), after 20 000 UDP queries across
# static, traffic-managed, geographic-with-ECS and NXDOMAIN names.
#
#   benches/memory.sh            (builds the release binary; loopback ports 25353/28053)
#
# Needs python3 (for the CSV and the queries). Not run in CI.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/meridian
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PID=

python3 - "$WORK/big.csv" <<'EOF'
import sys
codes = [l.split(',')[0] for l in open('src/traffic/geo/countries.csv')
         if l[:1].isalpha() and not l.startswith('code,')][:240]
with open(sys.argv[1], 'w') as f:
    f.write('cidr,country,continent,subdivision,lat,lon\n')
    for i in range(500_000):
        n = (1 << 24) + i * 256      # 1.0.0.0/24 onwards
        f.write(f'{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.0/24,{codes[(i * 7919) % len(codes)]},,,,\n')
EOF
"$BIN" geoip build -o "$WORK/big.mmdb" "$WORK/big.csv" >/dev/null

run() { # name, config file
    "$BIN" -c "$2" serve --log warn &
    PID=$!
    python3 - <<'EOF'
import socket, struct, time, random
def q(name, ecs=None):
    m = struct.pack('>HHHHHH', random.randrange(65536), 0x0100, 1, 0, 0, 1)
    for l in name.split('.'):
        m += bytes([len(l)]) + l.encode()
    m += b'\0' + struct.pack('>HH', 1, 1)
    opt = b''
    if ecs:
        a = bytes(int(x) for x in ecs.split('.'))[:3]
        opt = struct.pack('>HHBB', 1, 24, 24, 0) + a
        opt = struct.pack('>HH', 8, len(opt)) + opt
    return m + b'\0' + struct.pack('>HHIH', 41, 1232, 0, len(opt)) + opt
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(100):                     # until it answers
    try:
        s.sendto(q('api.app.example.com'), ('127.0.0.1', 25353)); s.recvfrom(4096); break
    except OSError:
        time.sleep(0.1)
names = [('api.app.example.com', None), ('www.app.example.com', None),
         ('geo.app.example.com', '1.2.3.0'), ('canary.app.example.com', None),
         ('nope.app.example.com', None)]
for i in range(20_000):
    n, e = names[i % len(names)]
    if e:
        e = f'{1 + i % 7}.{i % 256}.{(i * 3) % 256}.0'
    s.sendto(q(n, e), ('127.0.0.1', 25353))
    try:
        s.recvfrom(4096)
    except OSError:
        pass
EOF
    printf '%-36s peak %s, now %s\n' "$1" "$(awk '/VmHWM/ {print $2, $3}' /proc/$PID/status)" \
        "$(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

sed -e 's/127.0.0.1:5353/127.0.0.1:25353/' -e 's/127.0.0.1:8053/127.0.0.1:28053/' \
    -e "s|^file = \"zones/|file = \"$PWD/zones/|" -e "s|^database = \"geoip/|database = \"$PWD/geoip/|" \
    meridian.toml > "$WORK/default.toml"
sed -e "s|^database = .*|database = \"$WORK/big.mmdb\"|" "$WORK/default.toml" > "$WORK/big.toml"
run "default configuration" "$WORK/default.toml"
run "500 000-network country database" "$WORK/big.toml"
