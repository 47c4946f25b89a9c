#!/usr/bin/env bash
# Builds (once) a Debian 12 image with systemd and python3 from a debootstrap
# rootfs, for molecule scenarios and as BASE_IMAGE of the service images.
# No registry is needed: the rootfs comes from Debian's mirror over HTTP.
# The rootfs tarball is cached in $CANARYLAB_CACHE/images (the user cache), so a
# wiped podman store or a fresh clone is refilled in seconds.
set -euo pipefail
. "$(dirname "$0")/env.sh"

image="$CANARYLAB_BASE_IMAGE"
mirror="${CANARYLAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="$CANARYLAB_CACHE/images"
tarball="$cache/debian12-systemd-rootfs.tar"

if podman image exists "$image"; then
  echo "base image $image: present"
  exit 0
fi
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is missing: run 'make setup' (or apt-get install debootstrap)" >&2; exit 1; }
  rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  echo "debootstrap bookworm into $rootfs (about 90 s)"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,systemd,systemd-sysv,sudo,iproute2 \
    bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
  # Containers need no getty and no first-boot wizard.
  rm -f "$rootfs"/etc/systemd/system/getty.target.wants/* "$rootfs/etc/machine-id"
  : >"$rootfs/etc/machine-id"
  printf 'deb %s bookworm main\n' "$mirror" >"$rootfs/etc/apt/sources.list"
  tar -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi
podman import --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' "$tarball" "$image" >/dev/null
echo "base image $image: built"
