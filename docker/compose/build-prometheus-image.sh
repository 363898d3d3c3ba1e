#!/usr/bin/env bash
# Builds the compose demo's Prometheus image offline from Debian's prometheus package (its
# binary and the libraries it links, as a non-root user, FROM scratch), since no container
# registry may be reachable:
#   docker/compose/build-prometheus-image.sh [TAG]   # default meridian-demo-prometheus:latest
# Where registries are reachable, the upstream image does the same job:
#   PROMETHEUS_IMAGE=prom/prometheus docker compose -f docker/compose/compose.yaml up
set -euo pipefail
tag=${1:-meridian-demo-prometheus:latest}
bin=$(command -v prometheus || true)
if [ -z "$bin" ]; then
  echo "error: no prometheus binary; install Debian's package: apt-get install -y prometheus" >&2
  exit 1
fi
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/bin" "$root/etc/prometheus" "$root/prometheus" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$bin" "$root/bin/prometheus"
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
printf 'nobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$root/etc/passwd"
printf 'nogroup:x:65534:\n' >"$root/etc/group"
# COPY gives the files to root; the data directory must stay writable for the user.
chmod 1777 "$root/prometheus"
cat >"$ctx/Containerfile" <<'END'
FROM scratch
COPY rootfs/ /
USER 65534:65534
EXPOSE 9090/tcp
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
END
buildah bud --quiet --format docker --layers=false -f "$ctx/Containerfile" -t "$tag" "$ctx"
echo "built $tag from $bin"
