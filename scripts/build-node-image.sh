#!/usr/bin/env bash
# Builds (once per content) the container lab's node image from containers/node/
# on the Debian 12 base image, and prints its name.  The tag is a hash of the
# node's files and the base image's ID, so an edit gives a new image and an old
# tag is never reused for other content; :lab names the newest build.  The image is also saved as an archive
# in $CANARYLAB_CACHE/images, so a wiped podman store is refilled in seconds.
#   scripts/build-node-image.sh            build or reuse; print the image name
#   scripts/build-node-image.sh --print    print the name it would have, build nothing
set -euo pipefail
. "$(dirname "$0")/env.sh"

dir="$CANARYLAB_ROOT/containers/node"
repo="localhost/canarylab-node"
"$CANARYLAB_ROOT/scripts/build-base-image.sh" >&2
base_id="$(podman image inspect --format '{{.Id}}' "$CANARYLAB_BASE_IMAGE")"
tag="$( { echo "base $base_id"; cd "$dir" && for f in $(ls | sort); do echo "$f $(sha256sum <"$f")"; done; } \
        | sha256sum | cut -c1-16)"
image="$repo:$tag"
if [ "${1:-}" = "--print" ]; then
  echo "$image"
  exit 0
fi
archive="$CANARYLAB_CACHE/images/canarylab-node-$tag.tar"
if podman image exists "$image"; then
  echo "node image $image: present" >&2
elif [ -s "$archive" ]; then
  podman load -q -i "$archive" >/dev/null
  echo "node image $image: loaded from $archive" >&2
else
  echo "node image $image: building (apt-get in the build, about 1 min)" >&2
  log="$CANARYLAB_CACHE/images/canarylab-node.log"
  mkdir -p "$(dirname "$archive")"
  nice -n 19 podman build --pull=never --build-arg "BASE_IMAGE=$CANARYLAB_BASE_IMAGE" \
    -t "$image" -f "$dir/Containerfile" "$dir" >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; echo "node image build failed; the whole log: $log" >&2; exit 1; }
  podman save -q --format docker-archive -o "$archive.tmp" "$image"
  mv "$archive.tmp" "$archive"
  echo "node image $image: built" >&2
fi
# The Vagrantfile's container nodes start from :lab, the newest build.
podman tag "$image" "$repo:lab"
echo "$image"
