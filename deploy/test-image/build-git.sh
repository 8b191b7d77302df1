#!/usr/bin/env bash
# Builds localhost/rivet-git:latest, the image the `git` plugin's example and tests run git
# in, without any registry: the root filesystem of localhost/rivet-test:latest (made by
# build.sh, which this runs first) plus the host's git — Debian's binary at its compiled-in
# exec path, links for the builtins git runs as separate programs (a local clone runs
# git-upload-pack, a push git-receive-pack), the templates `git init` copies, and every
# shared library `ldd` names.
#
# The image carries a label with a hash of this script, the git binary and the rivet-test
# image it was made from, so it is rebuilt when any changes and left alone otherwise.
# `--force` rebuilds it anyway.
#
# Usage: deploy/test-image/build-git.sh [--force]
# Environment: GIT_BINARY (default /usr/lib/git-core/git, from Debian's git package).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
git_binary=${GIT_BINARY:-/usr/lib/git-core/git}
image=localhost/rivet-git:latest
base=localhost/rivet-test:latest
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

if [[ ! -x $git_binary ]]; then
  echo "build-git.sh: $git_binary not found; install Debian's git (apt-get install git)" >&2
  exit 1
fi
"$here/build.sh" >/dev/null

base_id=$(podman image inspect --format '{{ .Id }}' "$base")
recipe=$( (cat "${BASH_SOURCE[0]}" "$git_binary"; echo "$base_id") | sha256sum | cut -c1-16)
built=$(podman image inspect --format '{{ index .Labels "rivet.recipe" }}' "$image" 2>/dev/null || true)
if [[ $force == 0 && $built == "$recipe" ]]; then
  echo "build-git.sh: $image is up to date (recipe $recipe)"
  exit 0
fi

workdir=$(mktemp -d)
container=""
cleanup() {
  [[ -n $container ]] && podman rm --force "$container" >/dev/null 2>&1
  rm -rf "$workdir"
}
trap cleanup EXIT
rootfs="$workdir/rootfs"
mkdir -p "$rootfs"
container=$(podman create "$base")
podman export "$container" | tar -C "$rootfs" -x

mkdir -p "$rootfs/usr/lib/git-core" "$rootfs/usr/bin" "$rootfs/usr/share/git-core"
cp "$git_binary" "$rootfs/usr/lib/git-core/git"
for name in git-upload-pack git-receive-pack git-upload-archive; do
  ln -s git "$rootfs/usr/lib/git-core/$name"
done
ln -s ../lib/git-core/git "$rootfs/usr/bin/git"
if [[ -d /usr/share/git-core/templates ]]; then
  cp -r /usr/share/git-core/templates "$rootfs/usr/share/git-core/templates"
fi
for lib in $(ldd "$git_binary" | awk '/=> \// { print $3 } /^\s*\/[^ ]+ \(/ { print $1 }'); do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done

# Deterministic, like build.sh: sorted names, fixed owner and time.
tar -C "$rootfs" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -c . |
  podman import --quiet \
    --change 'CMD ["/bin/sh"]' \
    --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL rivet.recipe=$recipe" \
    - "$image" >/dev/null
echo "build-git.sh: built $image (recipe $recipe)"
