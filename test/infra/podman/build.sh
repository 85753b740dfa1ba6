#!/usr/bin/env bash
# Builds the e2e container images into root podman's image store, saves each as a
# docker-archive under test/infra/build/images/ (what the test node's containerd imports),
# and prints one `ROLE IMAGE ARCHIVE` line each (`microenforcer ...`, `app ...`,
# `pause ...`). Every image is tagged with a hash of what goes into it, so a machine builds
# each version once and an existing tag is reused as is; podman's layer cache makes a
# rebuild after a source change cheap (npm ci runs again only when package.json or the
# lockfile change).
#
# No registry is reachable, so the base image is made here from files this machine has:
#  - base, also tagged localhost/node:24-bookworm-slim, which is what the project's
#    Dockerfile starts FROM (podman looks a short name up under localhost/ first): the
#    Node 24 binary npm installed for this project and the host's shared libraries it
#    needs, busybox-static for a shell and coreutils, the host's npm, the host's CA
#    bundle so that npm inside the build trusts what npm on the host trusts, and the host's
#    C compiler (gcc's driver, cc1, as, ld and their libraries) for the preload library,
#    which the Dockerfile would otherwise apt-get.
#  - microenforcer: `podman build` of the project's Dockerfile, unchanged. Its npm ci steps
#    reach the npm registry through the host's network (--network host).
#  - app: busybox-static, the https-server test program, and a copy of busybox installed
#    as /opt/miner/xmrig — the "blocked executable" of the enforce scenario; run through
#    the symlink /opt/miner/sleep it is busybox's sleep applet, so it lives until killed.
#    And in /opt/dynamic/bin, the host's dynamically linked dash (as sh), coreutils and ps
#    with the libraries they load: programs the preload library (complete mode) loads into.
#  - pause: the pod sandbox image of the test node (registry.k8s.io/pause is out of reach):
#    Debian's static catatonit in pause mode, as podman's own infra containers run it.
#  - nginx: what the seed scenario runs with `kubectl run test-nginx --image=...`: a web
#    server as root in the foreground (busybox httpd standing in for nginx's master), no
#    USER, and a real curl (Debian's, with the libraries it links) whose only trusted CA is
#    the test CA below, so `curl https://www.google.com/` reaches the test's own server.
#
# The test CA (test/infra/build/test-ca/, made once with openssl and shared by every
# checkout) and a certificate it signed for www.google.com, which the e2e tier's HTTPS
# server presents.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export CONTAINERS_CONF="$here/containers.conf"
PATH="/usr/local/go/bin:$PATH"

node_binary="$root/node_modules/node/bin/node"
busybox=/bin/busybox
curl=/usr/bin/curl
ca_bundle=/etc/ssl/certs/ca-certificates.crt
npm_dir="$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)"
catatonit=/usr/bin/catatonit
for needed in "$node_binary" "$busybox" "$ca_bundle" "$npm_dir/package.json" "$catatonit" "$curl"; do
  [[ -e "$needed" ]] || { echo "build.sh: $needed is missing (npm ci, and apt-get install busybox-static ca-certificates catatonit curl)" >&2; exit 1; }
done

# Two test runs may start at once: one builds, the other waits and reuses.
mkdir -p "$root/test/infra/build"
exec 9>"$root/test/infra/build/podman-images.lock"
flock 9

# A short hash of the given files and directories (names and contents), then any extra
# words. Paths inside the repository are given relative to it, so that every checkout of
# the same sources shares the images.
hash_of() {
  local -a paths=()
  local extra=""
  for arg in "$@"; do
    if [[ ( "$arg" == /* && -e "$arg" ) || -e "$root/$arg" ]]; then paths+=("$arg"); else extra+=" $arg"; fi
  done
  { (cd "$root" && find "${paths[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); echo "$extra"; } | sha256sum | cut -c1-16
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A root filesystem with busybox-static and a symlink for each of its applets.
busybox_rootfs() {
  local rootfs="$1"
  mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,tmp,root,proc,sys,dev}
  chmod 1777 "$rootfs/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
  for applet in $("$busybox" --list-full); do
    [[ -e "$rootfs/$applet" ]] || ln -s /bin/busybox "$rootfs/$applet"
  done
}

# The shared libraries a host program loads, copied to the same paths in a root filesystem.
copy_libraries() { # copy_libraries PROGRAM ROOTFS
  local lib
  for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ ]*'); do
    mkdir -p "$2$(dirname "$lib")"
    cp -L "$lib" "$2$lib"
  done
}

# The host's C compiler in a root filesystem, as `cc`: what `cc -O2 -shared -nostdlib` needs.
add_c_compiler() {
  local rootfs="$1" file
  for file in "$(readlink -f "$(command -v cc)")" "$(cc -print-prog-name=cc1)" "$(cc -print-prog-name=collect2)" \
    "$(cc -print-prog-name=lto-wrapper)" "$(cc -print-file-name=liblto_plugin.so)" "$(readlink -f "$(command -v as)")" "$(readlink -f "$(command -v ld)")"; do
    mkdir -p "$rootfs$(dirname "$file")"
    cp -L "$file" "$rootfs$file"
    copy_libraries "$file" "$rootfs"
  done
  ln -sf "$(readlink -f "$(command -v cc)")" "$rootfs/usr/bin/cc"
  ln -sf "$(readlink -f "$(command -v as)")" "$rootfs/usr/bin/as"
  ln -sf "$(readlink -f "$(command -v ld)")" "$rootfs/usr/bin/ld"
}

import_rootfs() { # import_rootfs DIR IMAGE CMD
  tar -C "$1" -cf "$work/rootfs.tar" .
  podman import --quiet --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin' --change "CMD $3" \
    "$work/rootfs.tar" "$2" >/dev/null
  rm -f "$work/rootfs.tar"
}

self=test/infra/podman/build.sh
base_image="localhost/microenforcer-e2e-node:$(hash_of "$self" node_modules/node/bin/node "$busybox" "$ca_bundle" "$npm_dir/package.json" "$(readlink -f "$(command -v cc)")")"
if ! podman image exists "$base_image"; then
  rootfs="$work/base"
  busybox_rootfs "$rootfs"
  cp "$node_binary" "$rootfs/usr/local/bin/node"
  copy_libraries "$node_binary" "$rootfs"
  mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/etc" "$rootfs/etc/ssl/certs"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  add_c_compiler "$rootfs"
  # npm's global config (prefix /usr/local): the CA bundle npm uses instead of Node's own.
  echo "cafile=/etc/ssl/certs/ca-certificates.crt" >"$rootfs/usr/local/etc/npmrc"
  printf 'root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/nonexistent:/bin/sh\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  import_rootfs "$rootfs" "$base_image" '["node"]'
fi
podman tag "$base_image" localhost/node:24-bookworm-slim

microenforcer_image="localhost/microenforcer:e2e-$(hash_of Dockerfile .dockerignore package.json package-lock.json tsconfig.json cli microenforcer policies webhook preload "$base_image")"
if ! podman image exists "$microenforcer_image"; then
  podman build --quiet --pull=never --network host -f "$root/Dockerfile" -t "$microenforcer_image" "$root" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; exit 1; }
fi

dynamic_programs=(/usr/bin/dash /usr/bin/id /usr/bin/whoami /usr/bin/uname /usr/bin/hostname /usr/bin/cat /usr/bin/ls /usr/bin/env /usr/bin/sleep /usr/bin/ps)
app_image="localhost/microenforcer-e2e-app:$(hash_of "$self" test/infra/podman/https-server "$busybox" "${dynamic_programs[@]}")"
if ! podman image exists "$app_image"; then
  rootfs="$work/app"
  busybox_rootfs "$rootfs"
  mkdir -p "$rootfs/opt/dynamic/bin"
  for program in "${dynamic_programs[@]}"; do
    name="$(basename "$program")"
    [[ "$name" == dash ]] && name=sh
    cp -L "$program" "$rootfs/opt/dynamic/bin/$name"
    copy_libraries "$program" "$rootfs"
  done
  (cd "$here/https-server" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$rootfs/usr/local/bin/https-server" .)
  mkdir -p "$rootfs/opt/miner"
  cp "$busybox" "$rootfs/opt/miner/xmrig"
  ln -s xmrig "$rootfs/opt/miner/sleep"
  import_rootfs "$rootfs" "$app_image" '["/bin/sh"]'
fi

test_ca="$root/test/infra/build/test-ca"
if [[ ! -e "$test_ca/www.google.com.crt" ]]; then
  mkdir -p "$work/ca"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "/CN=microenforcer e2e test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$work/ca/ca.key" -out "$work/ca/ca.crt" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=www.google.com" \
    -keyout "$work/ca/www.google.com.key" -out "$work/ca/www.google.com.csr" 2>/dev/null
  printf 'subjectAltName=DNS:www.google.com\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' >"$work/ca/leaf.ext"
  openssl x509 -req -in "$work/ca/www.google.com.csr" -CA "$work/ca/ca.crt" -CAkey "$work/ca/ca.key" -CAcreateserial \
    -days 3650 -extfile "$work/ca/leaf.ext" -out "$work/ca/www.google.com.crt" 2>/dev/null
  rm -rf "$test_ca" && mkdir -p "$(dirname "$test_ca")" && mv "$work/ca" "$test_ca"
fi

nginx_image="localhost/microenforcer-e2e-nginx:$(hash_of "$self" "$busybox" "$curl" "$test_ca/ca.crt")"
if ! podman image exists "$nginx_image"; then
  rootfs="$work/nginx"
  busybox_rootfs "$rootfs"
  cp "$curl" "$rootfs/usr/bin/curl"
  copy_libraries "$curl" "$rootfs"
  mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/var/www"
  cp "$test_ca/ca.crt" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  echo "hello from test-nginx" >"$rootfs/var/www/index.html"
  printf 'root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnginx:x:101:\n' >"$rootfs/etc/group"
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  printf '127.0.0.1 localhost\n' >"$rootfs/etc/hosts"
  import_rootfs "$rootfs" "$nginx_image" '["httpd", "-f", "-p", "80", "-h", "/var/www"]'
fi

pause_image="localhost/microenforcer-e2e-pause:$(hash_of "$self" "$catatonit")"
if ! podman image exists "$pause_image"; then
  rootfs="$work/pause"
  mkdir -p "$rootfs"
  cp "$catatonit" "$rootfs/catatonit"
  import_rootfs "$rootfs" "$pause_image" '["/catatonit", "-P"]'
fi

# Each image as a docker-archive named after it (so also by hash); using a version touches
# its archive.
archives="$root/test/infra/build/images"
mkdir -p "$archives"
archive_of() { echo "$archives/$(tr '/:' '__' <<<"$1").tar"; }
for image in "$microenforcer_image" "$app_image" "$nginx_image" "$pause_image"; do
  archive="$(archive_of "$image")"
  if [[ ! -e "$archive" ]]; then
    podman save --quiet --format docker-archive -o "$archive.tmp" "$image"
    mv "$archive.tmp" "$archive"
  fi
  touch "$archive"
done

# Old versions go: of each image the $keep most recently used stay, because worktrees
# with other sources share this machine's store, and removing the images a test run is
# using fails it. Images go with their archives (other localhost/microenforcer tags stay),
# unless a container still uses one; base images whenever no kept image is built on them.
keep=4
for prefix in localhost_microenforcer_e2e- localhost_microenforcer-e2e-app_ localhost_microenforcer-e2e-nginx_ localhost_microenforcer-e2e-pause_; do
  ls -t "$archives/$prefix"*.tar | tail -n +$((keep + 1)) | xargs -r rm -f
done
for image in $(podman images --noheading --format '{{.Repository}}:{{.Tag}}'); do
  case "$image" in
    localhost/microenforcer:e2e-* | localhost/microenforcer-e2e-app:* | localhost/microenforcer-e2e-nginx:* | localhost/microenforcer-e2e-pause:*)
      [[ -e "$(archive_of "$image")" ]] || podman rmi "$image" >/dev/null 2>&1 || true ;;
    localhost/microenforcer-e2e-node:*)
      [[ "$image" == "$base_image" ]] || podman rmi "$image" >/dev/null 2>&1 || true ;;
  esac
done

echo "microenforcer $microenforcer_image $(archive_of "$microenforcer_image")"
echo "app $app_image $(archive_of "$app_image")"
echo "nginx $nginx_image $(archive_of "$nginx_image")"
echo "pause $pause_image $(archive_of "$pause_image")"
echo "test-ca $test_ca"
