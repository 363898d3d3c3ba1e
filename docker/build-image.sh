#!/usr/bin/env bash
# Builds the Meridian container image on this machine, with no container registry:
#   docker/build-image.sh [TAG]          # default meridian:latest, into podman's image store
# The release binary (cargo build --release --locked), the root filesystem from
# docker/rootfs.sh, and docker/Containerfile (FROM scratch) built by buildah in Docker's image
# format (OCI images have no HEALTHCHECK). Needs buildah (Debian: apt-get install buildah).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-meridian:latest}
cargo build --release --locked --bin meridian
target=$(cargo metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]+)".*/\1/')
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
docker/rootfs.sh "$ctx/rootfs" "$target/release/meridian"
buildah bud --quiet --format docker --layers=false -f "$PWD/docker/Containerfile" -t "$tag" "$ctx/rootfs"
echo "built $tag: $(du -sh "$ctx/rootfs" | cut -f1) root filesystem"
