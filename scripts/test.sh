#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
#
# Installs what the tests need beyond the Rust toolchain when it is missing (dig from
# Debian's bind9-dnsutils, kdig from knot-dnsutils, mmdblookup from mmdb-bin, promtool from
# prometheus, unbound, ...), then checks
# formatting, lints and docs, and runs every test. Safe to run again: nothing is installed
# twice.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=()
command -v dig >/dev/null 2>&1 || packages+=(bind9-dnsutils)
# kdig: Knot's client, a second implementation of DNS cookies, NSID and TSIG (tests/it/dig.rs).
command -v kdig >/dev/null 2>&1 || packages+=(knot-dnsutils)
# tsig-keygen (BIND's key files, tests/it/dig.rs) comes with the bind9 package; its daemon is
# never started (policy-rc.d below).
[ -x /usr/sbin/tsig-keygen ] || packages+=(bind9)
# NSD and Knot: real secondaries of Meridian in the zone transfer test (tests/it/xfr.rs).
[ -x /usr/sbin/nsd ] || packages+=(nsd)
[ -x /usr/sbin/knotd ] || packages+=(knot)
command -v mmdblookup >/dev/null 2>&1 || packages+=(mmdb-bin)
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
# faketime: an expired test certificate for the HTTPS tests (tests/it/https.rs).
command -v faketime >/dev/null 2>&1 || packages+=(faketime)
# chromium: the status page opened in a real browser with a token (tests/it/admin.rs).
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
# systemd-analyze: the shipped unit is verified (tests/it/cli.rs).
command -v systemd-analyze >/dev/null 2>&1 || packages+=(systemd)
# podman, buildah, runc: the container image is built and run (tests/it/container.rs).
command -v podman >/dev/null 2>&1 || packages+=(podman)
command -v buildah >/dev/null 2>&1 || packages+=(buildah)
command -v runc >/dev/null 2>&1 || packages+=(runc)
# unbound: a real resolver with a subnet cache in front of Meridian (tests/it/resolver.rs).
[ -x /usr/sbin/unbound ] || command -v unbound >/dev/null 2>&1 || packages+=(unbound)
# prometheus_client's strict OpenMetrics parser checks /metrics (tests/it/admin.rs).
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || packages+=(python3-prometheus-client)
# python3-yaml: the Kubernetes manifests are parsed (tests/it/cli.rs).
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || packages+=(python3-yaml)
if [ ${#packages[@]} -gt 0 ]; then
  echo "==> installing ${packages[*]}"
  # Debian starts a package's daemon (prometheus) on install unless policy-rc.d forbids it;
  # the tests start what they need themselves, on loopback.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" </dev/null >/dev/null
  [ "$made_policy" = 1 ] && as_root rm -f /usr/sbin/policy-rc.d
fi
# From PyPI, into a virtual environment of the project's own: podman-compose 1.1 or newer
# (Debian 12's 1.0.3 cannot give containers fixed addresses) for the compose demo
# (tests/it/container.rs), and kubernetes-validate (Kubernetes' own schemas, offline) for the
# manifests (tests/it/cli.rs).
venv=${XDG_CACHE_HOME:-$HOME/.cache}/meridian/venv
if ! "$venv/bin/podman-compose" --version >/dev/null 2>&1 || ! [ -x "$venv/bin/kubernetes-validate" ]; then
  echo "==> installing podman-compose and kubernetes-validate into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'podman-compose>=1.1' 'kubernetes-validate>=1.29' </dev/null
fi
export MERIDIAN_PODMAN_COMPOSE=$venv/bin/podman-compose
export MERIDIAN_KUBERNETES_VALIDATE=$venv/bin/kubernetes-validate
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets --quiet -- -D warnings
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --quiet
echo "==> every tests/it/*.rs is compiled"
# With autotests = false, a file under tests/it/ that main.rs does not declare is never built.
undeclared=0
for f in tests/it/*.rs; do
  m=$(basename "$f" .rs)
  [ "$m" = main ] && continue
  if ! grep -qE "^mod $m;" tests/it/main.rs; then
    echo "error: $f is not declared in tests/it/main.rs (add \`mod $m;\`)"
    undeclared=1
  fi
done
[ "$undeclared" = 0 ] || exit 1

echo "==> cargo test"
# Library unit tests and the one integration-test binary, every binary run even when an
# earlier one fails (--no-fail-fast). The closing line sums every "test result" line; a test
# binary that printed none (it crashed, or was killed) counts as a failure, so the summary is
# right whatever happened.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --no-fail-fast --lib --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^ *Running / { binaries++ }
     /^test result:/ { results++; for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END {
       if (binaries == 0) { print "error: no test binary ran"; f++ }
       if (results < binaries) { printf "error: %d of %d test binaries printed no result (crashed?)\n", binaries - results, binaries; f += binaries - results }
       printf "summary: %d passed, %d failed, %d skipped\n", p, f, s
       exit (f > 0) }' "$log" || status=1
exit "$status"
