#!/usr/bin/env bash
# A local Debian bookworm base image for the TrackFlow container, for machines that cannot pull
# the official python image: debootstrap from the Debian mirror this machine's apt already uses,
# then `podman import`. Does nothing when the image exists.
#
#   deploy/container/debian-base.sh [IMAGE]     (default localhost/trackflow-bookworm-base)
#
# Needs root, debootstrap and podman (apt-get install podman runc debootstrap).
set -euo pipefail
image="${1:-localhost/trackflow-bookworm-base}"
podman image exists "$image" && { echo "base image $image exists"; exit 0; }

mirror() {
  local file uri
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$file" ]] || continue
    uri="$(awk '/^URIs:/ {print $2; exit}' "$file")"
    [[ -n "$uri" && "$uri" != *security* ]] && grep -q "^Suites:.*bookworm" "$file" && { echo "$uri"; return; }
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$file" ]] || continue
    uri="$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' "$file")"
    [[ -n "$uri" ]] && { echo "$uri"; return; }
  done
  echo "http://deb.debian.org/debian"
}

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
url="$(mirror)"
echo "debootstrap bookworm from $url"
debootstrap --variant=minbase bookworm "$root" "$url" >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import - "$image" >/dev/null
echo "base image $image imported"
