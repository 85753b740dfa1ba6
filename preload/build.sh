#!/bin/sh
# Builds the preload library (part of `npm run build`): dist/preload/<arch>/libmicroenforcer-exec.so
# for this machine's architecture with the system cc, and for aarch64 too when Debian's
# gcc-aarch64-linux-gnu is installed. Reproducible: fixed flags, source paths mapped away,
# a build id derived from the content; the same inputs give the same bytes.
#
# Two LOAD segments instead of four (-z noseparate-code, -z norelro): every program of the
# pod maps the library at each exec, and the two segments fewer save ~20 µs of its ~100 µs
# (measured with exec-timer). RELRO would protect one relocation, the constructor's
# .init_array slot, which runs once at load; separate code would keep ~300 bytes of
# constants out of the executable mapping.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/preload/exec-report.c"
flags="-std=c11 -O2 -fPIC -shared -nostdlib -ffreestanding -fno-builtin -fno-stack-protector
  -fno-asynchronous-unwind-tables -fno-unwind-tables -fvisibility=hidden -fcf-protection=none
  -Wall -Wextra -Werror -ffile-prefix-map=$root/=
  -Wl,-z,defs -Wl,-z,now -Wl,-z,norelro -Wl,-z,noseparate-code -Wl,--hash-style=gnu -Wl,--build-id=sha1 -Wl,-soname,libmicroenforcer-exec.so"

build() { # build ARCH CC
  out="$root/dist/preload/$1"
  mkdir -p "$out"
  # shellcheck disable=SC2086
  "$2" $flags -o "$out/libmicroenforcer-exec.so.tmp" "$src"
  mv "$out/libmicroenforcer-exec.so.tmp" "$out/libmicroenforcer-exec.so"
}

native=$(uname -m)
command -v cc >/dev/null || { echo "preload/build.sh: a C compiler (cc) is needed to build the preload library: apt-get install gcc" >&2; exit 1; }
build "$native" cc
if [ "$native" != aarch64 ]; then
  if command -v aarch64-linux-gnu-gcc >/dev/null; then
    build aarch64 aarch64-linux-gnu-gcc
  else
    echo "preload/build.sh: aarch64-linux-gnu-gcc not installed, building $native only" >&2
  fi
fi
