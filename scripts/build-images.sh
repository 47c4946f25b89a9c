#!/usr/bin/env bash
# Builds canarylab's two service images from services/ (the build context):
#   localhost/canarylab/model-service:TAG   (services/model_service/Containerfile, model trained at build)
#   localhost/canarylab/app:TAG             (services/app/Containerfile)
#
#   scripts/build-images.sh [--base-image IMG] [--tag TAG] [--builder podman|buildah]
#                           [--only model-service|app] [--force] [--print-tag] [--prune-old]
#
# TAG defaults to a content hash of services/ (and of the base image), so an
# image is rebuilt only when its sources changed; a build is skipped when an
# image with that tag exists already (--force builds anyway).  --print-tag
# prints the tag and exits; --prune-old removes the other src-* tags of the
# images it built (layers still in use stay).  The last lines of the output are
# the image names.
#
# The host's CA bundle is mounted read-only for the build steps only
# (--volume /etc/ssl/certs:/etc/ssl/certs:ro), so pip works behind a
# TLS-inspecting proxy; it never ends up in an image.  A pip index configured
# on the host (PIP_INDEX_URL / PIP_EXTRA_INDEX_URL or `pip config`) is passed
# through as a build argument.  See docs/images.md.
set -euo pipefail
# shellcheck source=scripts/env.sh
. "$(dirname "$0")/env.sh"

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
die() { printf 'build-images: %s\n' "$1" >&2; [ -n "${2:-}" ] && printf '  -> %s\n' "$2" >&2; exit 1; }

base_image="${CANARYLAB_SERVICE_BASE_IMAGE:-docker.io/library/python:3.11-slim-bookworm}"
tag=""
builder="${CANARYLAB_IMAGE_BUILDER:-podman}"
only=""
force=0
print_tag=0
prune_old=0
while [ $# -gt 0 ]; do
  case "$1" in
    --base-image) [ $# -ge 2 ] || die "--base-image needs a value"; base_image="$2"; shift 2 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag="$2"; shift 2 ;;
    --builder) [ $# -ge 2 ] || die "--builder needs a value"; builder="$2"; shift 2 ;;
    --only) [ $# -ge 2 ] || die "--only needs a value"; only="$2"; shift 2 ;;
    --force) force=1; shift ;;
    --print-tag) print_tag=1; shift ;;
    --prune-old) prune_old=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" "see the usage above" ;;
  esac
done
case "$builder" in podman | buildah) ;; *) die "--builder must be podman or buildah, not '$builder'" ;; esac
case "$only" in "" | model-service | app) ;; *) die "--only must be model-service or app, not '$only'" ;; esac
if [ -n "$tag" ] && ! [[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  die "'$tag' is not a valid image tag" "use letters, digits, '_', '.' and '-' (at most 128)"
fi

context="$CANARYLAB_ROOT/services"

# The id of the base image when it is present locally, so a rebuilt base gives a new tag.
base_image_id() {
  case "$builder" in
    podman) podman image inspect --format '{{.Id}}' "$base_image" 2>/dev/null || true ;;
    buildah) buildah inspect --type image --format '{{.FromImageID}}' "$base_image" 2>/dev/null || true ;;
  esac
}

# sha256sum (coreutils), else `shasum -a 256` (macOS, BSDs): the same output, so the same tag.
sha256_cmd() {
  if command -v sha256sum >/dev/null; then
    echo sha256sum
  elif command -v shasum >/dev/null; then
    echo "shasum -a 256"
  else
    die "neither sha256sum nor shasum is installed" \
      "install coreutils (sha256sum) or perl's shasum, or pass --tag"
  fi
}

# sha256 over every file of the build context that .containerignore lets through.
content_hash() {
  local sha256
  read -r -a sha256 <<<"$(sha256_cmd)"
  {
    (cd "$CANARYLAB_ROOT" && find services -type f \
      -not -path '*/__pycache__/*' -not -name '*.pyc' -not -path '*.egg-info/*' \
      -not -path '*/build/*' -not -path '*/dist/*' -not -path '*/.venv/*' \
      -not -path '*/.pytest_cache/*' -not -path '*/.mypy_cache/*' -not -path '*/.ruff_cache/*' \
      -print0 | LC_ALL=C sort -z | xargs -0 "${sha256[@]}")
    printf 'base %s %s\n' "$base_image" "$(base_image_id)"
  } | "${sha256[@]}" | cut -c1-12
}

if [ -z "$tag" ]; then
  sha256_cmd >/dev/null  # dies here, in this shell, when there is neither
  tag="src-$(content_hash)"
fi
if [ "$print_tag" -eq 1 ]; then
  echo "$tag"
  exit 0
fi
command -v "$builder" >/dev/null || die "$builder is not installed" "run 'make setup' (or apt-get install $builder)"

image_exists() {
  case "$builder" in
    podman) podman image exists "$1" ;;
    buildah) buildah inspect --type image "$1" >/dev/null 2>&1 ;;
  esac
}

build_args=(--build-arg "BASE_IMAGE=$base_image" --build-arg "VERSION=$tag"
  --build-arg "REVISION=$(git -C "$CANARYLAB_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)")
pip_conf() { python3 -m pip config get "$1" 2>/dev/null || true; }
index_url="${PIP_INDEX_URL:-$(pip_conf global.index-url)}"
extra_index_url="${PIP_EXTRA_INDEX_URL:-$(pip_conf global.extra-index-url)}"
[ -z "$index_url" ] || build_args+=(--build-arg "PIP_INDEX_URL=$index_url")
[ -z "$extra_index_url" ] || build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra_index_url")
ca_dir="${CANARYLAB_CA_CERTS_DIR:-/etc/ssl/certs}"
volumes=()
if [ -s "$ca_dir/ca-certificates.crt" ]; then
  volumes=(--volume "$ca_dir:/etc/ssl/certs:ro")
else
  echo "build-images: no $ca_dir/ca-certificates.crt: pip in the build uses the base image's CA bundle" >&2
fi

build_one() {  # short-name containerfile-dir
  local name="localhost/canarylab/$1:$tag" containerfile="$context/$2/Containerfile"
  [ -f "$containerfile" ] || die "missing $containerfile"
  if [ "$force" -eq 0 ] && image_exists "$name"; then
    echo "build-images: $name: present, not rebuilt" >&2
    return
  fi
  echo "build-images: building $name from $base_image with $builder" >&2
  # --format docker: the OCI image format has no HEALTHCHECK.
  "$builder" build --format docker --layers -f "$containerfile" "${build_args[@]}" "${volumes[@]}" \
    -t "$name" "$context" >&2 \
    || die "building $name failed (see the output above)" \
      "if the base image is missing, build it with scripts/build-base-image.sh or pass --base-image"
}

# Removes the content-hash tags of earlier builds of one image (never the one just built).
prune_old_tags() {  # repository
  local old
  case "$builder" in
    podman) old=$(podman images --format '{{.Repository}}:{{.Tag}}' "$1") ;;
    buildah) old=$(buildah images --format '{{.Name}}:{{.Tag}}' "$1") ;;
  esac
  for image in $old; do
    case "$image" in
      "$1:$tag") ;;
      "$1":src-*)
        if "$builder" rmi "$image" >/dev/null 2>&1; then echo "build-images: removed $image" >&2; fi ;;
    esac
  done
}

built=()
if [ -z "$only" ] || [ "$only" = model-service ]; then
  build_one model-service model_service
  built+=("localhost/canarylab/model-service:$tag")
fi
if [ -z "$only" ] || [ "$only" = app ]; then
  build_one app app
  built+=("localhost/canarylab/app:$tag")
fi
if [ "$prune_old" -eq 1 ]; then
  for image in "${built[@]}"; do prune_old_tags "${image%:*}"; done
fi
printf '%s\n' "${built[@]}"
