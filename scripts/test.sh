#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
#
# Installs what the tests need beyond the Rust toolchain when it is missing (dig from
# Debian's bind9-dnsutils, mmdblookup from mmdb-bin, promtool from prometheus), then checks
# formatting, lints and docs, and runs every test. Safe to run again: nothing is installed
# twice.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=()
command -v dig >/dev/null 2>&1 || packages+=(bind9-dnsutils)
command -v mmdblookup >/dev/null 2>&1 || packages+=(mmdb-bin)
command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
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
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets --quiet -- -D warnings
echo "==> cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --quiet
echo "==> cargo test"
# Library unit tests and the one integration-test binary. The closing line sums every
# "test result" line, so a run that executed no test is plain to see.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --lib --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
