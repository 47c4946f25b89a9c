# shellcheck shell=bash
# Source this file to get the project's tools on PATH:  . scripts/env.sh
CANARYLAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CANARYLAB_ROOT
# Builds and downloads are cached by version here, shared by every clone, never in the clone.
export CANARYLAB_CACHE="${CANARYLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/canarylab}"
export PATH="$CANARYLAB_ROOT/.venv/bin:$CANARYLAB_ROOT/.cache/bin:$PATH"
if [ -d /usr/local/go/bin ]; then PATH="$PATH:/usr/local/go/bin"; fi
export CONTAINERS_CONF="$CANARYLAB_ROOT/containers/containers.conf"
export ANSIBLE_CONFIG="$CANARYLAB_ROOT/ansible.cfg"
# The systemd Debian 12 image that molecule and the image builds start from.
export CANARYLAB_BASE_IMAGE="${CANARYLAB_BASE_IMAGE:-localhost/canarylab-debian12-systemd:latest}"
