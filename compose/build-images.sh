#!/usr/bin/env bash
# Builds ringbridge's service images on the local Docker Engine, FROM scratch (nothing is pulled):
#   compose/build-images.sh [SERVICE...]     default: every service folder with a main package
# Images are tagged ringbridge/<service>:<VERSION> (VERSION defaults to dev) and :latest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"

VERSION="${VERSION:-dev}"
REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
services=("$@")
if [ "${#services[@]}" -eq 0 ]; then
  for d in ami-gateway connector-bx connector-amo admin supervisor testsystem; do
    [ -f "$d/main.go" ] && services+=("$d")
  done
fi

ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "build-images: $ca is missing: apt-get install -y ca-certificates" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for svc in "${services[@]}"; do
  ctx="$work/$svc"
  mkdir -p "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/etc/ringbridge" "$ctx/rootfs/tmp"
  cp "$ca" "$ctx/rootfs/etc/ssl/certs/"
  chmod 1777 "$ctx/rootfs/tmp"
  CGO_ENABLED=0 go build -trimpath -tags timetzdata \
    -ldflags "-s -w -X main.version=$VERSION" -o "$ctx/service" "./$svc"
  docker build -q -f compose/Dockerfile \
    --build-arg SERVICE="$svc" --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
    -t "ringbridge/$svc:$VERSION" -t "ringbridge/$svc:latest" "$ctx" >/dev/null
  echo "ringbridge/$svc:$VERSION $(docker image inspect -f '{{.Size}}' "ringbridge/$svc:$VERSION" | awk '{printf "%.1f MB", $1/1e6}')"
done
