#!/usr/bin/env bash
# Assembles the container image's root filesystem in OUT_DIR: the meridian binary, exactly the
# shared libraries it links (as ldd reports them), a non-root user, and the image's default
# configuration (docker/meridian.toml with the demo zone and GeoIP database). Nothing else: no
# shell, no package manager. docker/build-image.sh (buildah, offline) and docker/Dockerfile
# (Docker) both build the image from this tree, so the two images are the same.
#   docker/rootfs.sh OUT_DIR path/to/meridian
set -euo pipefail
out=$1
bin=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out"
mkdir -p "$out/usr/local/bin" "$out/etc/meridian" "$out/run/secrets/meridian" "$out/tmp"
chmod 1777 "$out/tmp"
# Without debug information (the release profile keeps it for profiling): about a quarter of the size.
install -m 0755 "$bin" "$out/usr/local/bin/meridian"
strip --strip-debug "$out/usr/local/bin/meridian"
# The libraries the binary links and the dynamic loader, at the paths the binary asks for.
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r lib; do
    mkdir -p "$out$(dirname "$lib")"
    cp -L "$lib" "$out$lib"
  done
# glibc resolves host names (webhook and load-source URLs) through these.
printf 'hosts: files dns\n' >"$out/etc/nsswitch.conf"
printf 'root:x:0:0:root:/nonexistent:/nonexistent\nmeridian:x:65532:65532:meridian:/nonexistent:/nonexistent\n' >"$out/etc/passwd"
printf 'root:x:0:\nmeridian:x:65532:\n' >"$out/etc/group"
install -m 0644 "$repo/docker/meridian.toml" "$out/etc/meridian/meridian.toml"
mkdir -p "$out/etc/meridian/zones" "$out/etc/meridian/geoip"
install -m 0644 "$repo"/zones/*.zone "$out/etc/meridian/zones/"
install -m 0644 "$repo/geoip/demo.mmdb" "$out/etc/meridian/geoip/"
