#!/usr/bin/env bash
# Builds the two local images that Rivet's tests and examples run in, from the static
# busybox of Debian's busybox-static package, without any registry:
#
#   localhost/rivet-test:latest     busybox with every applet linked in /bin (so /bin/sh,
#                                   echo, sha256sum, ...), /workspace, /tmp, and root in
#                                   /etc/passwd and /etc/group.
#   localhost/rivet-noshell:latest  only /bin/busybox: no /bin/sh and no applet links, for
#                                   tests that must work with an image without a shell. Run
#                                   commands as `/bin/busybox echo ok`. (busybox picks the applet
#                                   from the name it is called by and accepts only names starting
#                                   with "busybox", so a copy named /bin/bb answers "applet not
#                                   found" to every command.)
#
# Each image carries a label with a hash of this script and of the busybox binary, so it is
# rebuilt when either changes and left alone otherwise (the usual run takes well under a
# second). `--force` rebuilds both anyway.
#
# Usage: deploy/test-image/build.sh [--force]
# Environment: BUSYBOX (default /bin/busybox) must be a statically linked busybox.
set -euo pipefail

busybox=${BUSYBOX:-/bin/busybox}
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

if [[ ! -x $busybox ]]; then
  echo "build.sh: $busybox not found; install Debian's busybox-static (apt-get install busybox-static)" >&2
  exit 1
fi
command -v podman >/dev/null || { echo "build.sh: podman is not installed" >&2; exit 1; }

recipe=$(cat "${BASH_SOURCE[0]}" "$busybox" | sha256sum | cut -c1-16)

# Prints the recipe hash an existing image was built from, or nothing.
built_from() {
  podman image inspect --format '{{ index .Labels "rivet.recipe" }}' "$1" 2>/dev/null || true
}

# Packs a root filesystem into an image. The tar is deterministic (sorted names, fixed
# owner and time), so the same inputs give the same layer.
import_rootfs() {
  local rootfs=$1 image=$2 cmd=$3
  tar -C "$rootfs" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -c . |
    podman import --quiet \
      --change "CMD $cmd" \
      --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "LABEL rivet.recipe=$recipe" \
      - "$image" >/dev/null
  echo "build.sh: built $image (recipe $recipe)"
}

fill_test_rootfs() {
  local rootfs=$1 applet
  mkdir -p "$rootfs"/{bin,etc,root,tmp,workspace}
  chmod 1777 "$rootfs/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
  for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
  echo 'root:x:0:' >"$rootfs/etc/group"
}

fill_noshell_rootfs() {
  local rootfs=$1
  mkdir -p "$rootfs"/{bin,tmp,workspace}
  chmod 1777 "$rootfs/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
}

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

build() {
  local image=$1 fill=$2 cmd=$3
  if [[ $force == 0 && $(built_from "$image") == "$recipe" ]]; then
    echo "build.sh: $image is up to date (recipe $recipe)"
    return
  fi
  local rootfs="$workdir/${image//[^a-z]/_}"
  mkdir -p "$rootfs"
  "$fill" "$rootfs"
  import_rootfs "$rootfs" "$image" "$cmd"
}

build localhost/rivet-test:latest fill_test_rootfs '["/bin/sh"]'
build localhost/rivet-noshell:latest fill_noshell_rootfs '["/bin/busybox"]'
