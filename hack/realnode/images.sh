#!/usr/bin/env bash
# Pack the node's images without any public registry and push them to the local registry:
#   pause    a static C program (pause/pause.c): the pod sandbox image
#   busybox  Debian's busybox-static: the test workloads
#   usage: images.sh REGISTRY (e.g. 127.0.0.1:5000)
set -euo pipefail
# shellcheck source=hack/realnode/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
registry=${1:?registry host:port}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/pause" "$work/busybox/bin" "$work/busybox/tmp"
gcc -static -Os -s -o "$work/pause/pause" "$REALNODE_HACK/pause/pause.c"
push_dir "$work/pause" "$registry/$PAUSE_REPO" --entrypoint=/pause

cp /bin/busybox "$work/busybox/bin/busybox"
ln -s busybox "$work/busybox/bin/sh"
ln -s busybox "$work/busybox/bin/sleep"
chmod 1777 "$work/busybox/tmp"
push_dir "$work/busybox" "$registry/$BUSYBOX_REPO" --entrypoint=/bin/sh
