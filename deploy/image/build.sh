#!/usr/bin/env bash
# Build podtask's operator image here, without pulling any base image, and push it to a registry:
# one layer holding the release binary and the glibc pieces it links (found with ldd), /etc/passwd with the
# nonroot user, an empty /tmp; no shell, like the distroless image the Dockerfile uses. User 65532, cmd run.
# The shipped Dockerfile stays what users build elsewhere; this image runs the same binary the same way.
#   usage: deploy/image/build.sh REF   (e.g. 127.0.0.1:5000/podtask:dev); prints "size <bytes>"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ref=${1:?image reference}
crane=${CRANE:-$(command -v crane)}
bin=${PODTASK_RELEASE_BIN:-target/release/podtask}
[[ -x $bin ]] || cargo build --release --locked --bin podtask

# quiet CMD...: run CMD, show its output only when it fails
quiet() {
	local out
	out=$("$@" 2>&1) || { echo "$out" >&2; return 1; }
}

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$bin" "$root/usr/local/bin/podtask"
# the dynamic loader and libraries at the paths the binary asks for
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"; done
mkdir -p "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"

layer=$(mktemp --suffix=.tar)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$root" -cf "$layer" .
quiet "$crane" append --insecure -f "$layer" -t "$ref"
rm -f "$layer"
quiet "$crane" mutate --insecure --set-platform linux/amd64 --user 65532:65532 --entrypoint /usr/local/bin/podtask --cmd run \
	--label org.opencontainers.image.source=podtask -t "$ref" "$ref"
size=$("$crane" manifest --insecure "$ref" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(m["config"]["size"]+sum(l["size"] for l in m["layers"]))')
echo "image $ref: $("$crane" digest --insecure "$ref"), size $size bytes (compressed layers + config)"
echo "size $size"
