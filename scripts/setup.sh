#!/usr/bin/env bash
# One-shot, idempotent set-up on Debian/Ubuntu: system packages, the project's
# virtual environment, the Go-built tools at pinned versions, and the base image.
#   scripts/setup.sh            everything the tests need
#   scripts/setup.sh --minimal  only what the local experiment needs
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
minimal=0
[ "${1:-}" = "--minimal" ] && minimal=1

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
sudo_cmd() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_packages=(python3 python3-venv python3-pip git)
if [ "$minimal" -eq 0 ]; then
  apt_packages+=(podman runc uidmap slirp4netns fuse-overlayfs debootstrap prometheus vagrant vagrant-libvirt wrk hey)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    say "apt-get install ${missing[*]}"
    sudo_cmd apt-get update -qq
    sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "not a Debian/Ubuntu host: install these yourself: ${missing[*]}" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.canarylab-installed
inputs=(pyproject.toml constraints.txt services/contract/pyproject.toml services/model_service/pyproject.toml services/app/pyproject.toml)
if [ ! -f "$stamp" ] || [ -n "$(find "${inputs[@]}" -newer "$stamp" 2>/dev/null)" ]; then
  say "pip install (editable) canarylab and its services"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt \
    -e services/contract -e services/model_service -e services/app -e '.[dev]'
  touch "$stamp"
fi

# Go-built tools, at the versions pinned in inventory/group_vars/all/versions.yml.
pin() { .venv/bin/python scripts/pins.py "$1"; }
gobin="$PWD/.cache/bin"
mkdir -p "$gobin"
go_install() {  # name module version
  local name=$1 module=$2 version=$3 stampfile="$gobin/.$1.version"
  if [ -x "$gobin/$name" ] && [ "$(cat "$stampfile" 2>/dev/null)" = "$version" ]; then return; fi
  if ! command -v go >/dev/null; then
    echo "go is not installed: $name $version cannot be built (install Go >= 1.22 from go.dev)" >&2
    return 1
  fi
  say "go install $module@$version"
  GOBIN="$gobin" GOFLAGS=-mod=mod go install "$module@$version"
  echo "$version" >"$stampfile"
}
go_install bombardier github.com/codesenberg/bombardier "$(pin bombardier_version)"
# The lab's pinned containerd, built only to check that it reads the config our
# containerd role writes (tests/test_containerd_config.py); the lab installs the
# checksummed release.  Its module has replace directives, so `go install
# module@version` refuses it: build it from a scratch module instead.
build_containerd() {
  local version bin
  version="$(pin containerd_version)"
  bin="$gobin/containerd-$version"
  [ -x "$bin" ] && return
  command -v go >/dev/null || { echo "go is not installed: containerd $version cannot be built" >&2; return 1; }
  say "go build containerd v$version (for the containerd config test)"
  local scratch
  scratch="$(mktemp -d)"
  (
    cd "$scratch"
    go mod init canarylab.invalid/containerd-build >/dev/null 2>&1
    printf 'package main\n\nimport _ "github.com/containerd/containerd/v2/cmd/containerd"\n' >tools.go
    go get "github.com/containerd/containerd/v2@v$version" >/dev/null 2>&1
    go mod tidy >/dev/null 2>&1
    CGO_ENABLED=0 go build -tags "no_btrfs no_devmapper no_zfs" -o "$bin.tmp" \
      github.com/containerd/containerd/v2/cmd/containerd
  )
  rm -rf "$scratch"
  mv "$bin.tmp" "$bin"
}

if [ "$minimal" -eq 0 ]; then
  go_install helm helm.sh/helm/v3/cmd/helm "$(pin helm_version)"
  build_containerd
  scripts/build-base-image.sh
fi
say "set-up done"
