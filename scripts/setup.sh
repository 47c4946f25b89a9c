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
  # No `prometheus` here: Debian's package starts a system daemon on :9090.
  # install_prometheus below unpacks its binaries into the user cache instead.
  # catatonit: the init of podman's pod infra container (a Recommends, so name it).
  # podman-docker: the `docker` shim that Vagrant's docker provider drives (container nodes).
  apt_packages+=(podman podman-docker runc catatonit uidmap slirp4netns fuse-overlayfs debootstrap vagrant vagrant-libvirt wrk hey)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
apt_updated=0
apt_update() { [ "$apt_updated" -eq 1 ] || { sudo_cmd apt-get update -qq; apt_updated=1; }; }
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    say "apt-get install ${missing[*]}"
    apt_update
    sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "not a Debian/Ubuntu host: install these yourself: ${missing[*]}" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
# The local experiment needs canarylab and the services; the tests add the dev tools.
# A minimal set-up after a full one keeps the full one's stamp (and its extras).
if [ "$minimal" -eq 1 ] && [ ! -f .venv/.canarylab-installed ]; then
  extras="" stamp=.venv/.canarylab-installed-minimal
else
  extras="[dev]" stamp=.venv/.canarylab-installed
fi
inputs=(pyproject.toml constraints.txt services/contract/pyproject.toml services/model_service/pyproject.toml services/app/pyproject.toml)
if [ ! -f "$stamp" ] || [ -n "$(find "${inputs[@]}" -newer "$stamp" 2>/dev/null)" ]; then
  say "pip install (editable) canarylab$extras and its services"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt \
    -e services/contract -e services/model_service -e services/app -e ".$extras"
  touch "$stamp"
fi

# Tools at the versions pinned in inventory/group_vars/all/versions.yml.  Each
# is built or unpacked once into the user cache ($CANARYLAB_CACHE/tools/NAME-VERSION,
# shared by every clone) and linked into the clone's .cache/bin, which
# scripts/env.sh puts on PATH.
pin() { .venv/bin/python scripts/pins.py "$1"; }
bindir="$PWD/.cache/bin"
tools="$CANARYLAB_CACHE/tools"
mkdir -p "$bindir" "$tools"
link() {  # name file: .cache/bin/name -> file
  ln -sfn "$2" "$bindir/$1"
}
need_go() {  # what
  command -v go >/dev/null && return
  echo "go is not installed: $1 cannot be built (install Go >= 1.22 from go.dev)" >&2
  return 1
}
go_install() {  # name module version
  local name=$1 module=$2 version=$3 dir="$tools/$1-$3"
  if [ ! -x "$dir/$name" ]; then
    need_go "$name $version"
    say "go install $module@$version"
    rm -rf "$dir.tmp"
    GOBIN="$dir.tmp" GOFLAGS=-mod=mod nice -n 19 go install "$module@$version"
    rm -rf "$dir"  # a partial one from an interrupted run
    mv "$dir.tmp" "$dir"
  fi
  link "$name" "$dir/$name"
  echo "$version" >"$bindir/.$name.version"
}
go_install bombardier github.com/codesenberg/bombardier "$(pin bombardier_version)"

# Prometheus and promtool for the local target: Debian's package at the pinned
# upstream version, unpacked (never installed, so no daemon is started).  apt
# checks the package against Debian's signed archive.  Elsewhere (macOS, other
# versions) experiment.yml's prometheus_binary role downloads the pinned,
# checksummed release instead.
install_prometheus() {
  local want candidate upstream dir tmp
  want="$(pin prometheus_debian_version)"
  dir="$tools/prometheus-debian-$want"
  if [ ! -x "$dir/prometheus" ] || [ ! -x "$dir/promtool" ]; then
    if ! command -v apt-get >/dev/null; then
      echo "no apt-get: the experiment will download Prometheus $(pin prometheus_version) (roles/prometheus_binary)" >&2
      return 0
    fi
    # Fresh lists: an image's old ones may name a build the mirror no longer has.
    apt_update
    candidate="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')"
    upstream="${candidate#*:}"; upstream="${upstream%%+*}"; upstream="${upstream%%-*}"
    if [ "$upstream" != "$want" ]; then
      echo "this host's apt offers prometheus '${candidate:-none}', not $want (prometheus_debian_version):" \
        "the experiment will download Prometheus $(pin prometheus_version) instead (roles/prometheus_binary)" >&2
      return 0
    fi
    say "Prometheus $candidate from Debian's archive, unpacked into $dir (no daemon)"
    tmp="$(mktemp -d)"
    chmod 0777 "$tmp"  # apt downloads as its unprivileged _apt user
    if ! (cd "$tmp" && apt-get download -qq "prometheus=$candidate"); then
      rm -rf "$tmp"
      echo "could not download Debian's prometheus $candidate: the experiment will download" \
        "Prometheus $(pin prometheus_version) instead (roles/prometheus_binary)" >&2
      return 0
    fi
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
    mkdir -p "$tmp/out"
    cp "$tmp/root/usr/bin/prometheus" "$tmp/root/usr/bin/promtool" "$tmp/out/"
    echo "$candidate" >"$tmp/out/debian-version"
    rm -rf "$dir"  # a partial one from an interrupted run
    mv "$tmp/out" "$dir"
    rm -rf "$tmp"
  fi
  link prometheus "$dir/prometheus"
  link promtool "$dir/promtool"
}
install_prometheus

# The lab's pinned containerd, built only to check that it reads the config our
# containerd role writes (tests/test_containerd_config.py); the lab installs the
# checksummed release.  Its module has replace directives, so `go install
# module@version` refuses it: build it from a scratch module instead.
build_containerd() {
  local version dir scratch
  version="$(pin containerd_version)"
  dir="$tools/containerd-$version"
  if [ ! -x "$dir/containerd" ]; then
    need_go "containerd $version"
    say "go build containerd v$version (for the containerd config test)"
    rm -rf "$dir.tmp"
    scratch="$(mktemp -d)"
    (
      cd "$scratch"
      go mod init canarylab.invalid/containerd-build >/dev/null 2>&1
      printf 'package main\n\nimport _ "github.com/containerd/containerd/v2/cmd/containerd"\n' >tools.go
      go get "github.com/containerd/containerd/v2@v$version" >/dev/null 2>&1
      go mod tidy >/dev/null 2>&1
      mkdir -p "$dir.tmp"
      CGO_ENABLED=0 nice -n 19 go build -tags "no_btrfs no_devmapper no_zfs" -o "$dir.tmp/containerd" \
        github.com/containerd/containerd/v2/cmd/containerd
    )
    rm -rf "$scratch" "$dir"
    mv "$dir.tmp" "$dir"
  fi
  link "containerd-$version" "$dir/containerd"
}

# Vagrant's docker provider runs `docker`; podman-docker's shim must win over any
# other docker client on PATH (that one would look for a Docker daemon).
if [ -x /usr/bin/docker ] && grep -q podman /usr/bin/docker 2>/dev/null; then
  link docker /usr/bin/docker
fi

if [ "$minimal" -eq 0 ]; then
  go_install helm helm.sh/helm/v3/cmd/helm "$(pin helm_version)"
  build_containerd
  scripts/build-base-image.sh
fi
say "set-up done"
