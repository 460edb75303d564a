#!/usr/bin/env bash
# install_cross_deps.sh: what `make cross-test` needs (docs/testing.md, "ARM under
# emulation"), installed only if missing. Kept apart from install_deps.sh: only the
# cross-test needs these, and they add a foreign architecture to dpkg.
#   gcc-aarch64-linux-gnu              the aarch64 cross compiler (with binutils-aarch64-linux-gnu:
#                                      aarch64-linux-gnu-objdump; libc6-dev-arm64-cross: the C library's
#                                      headers, only recommended by the compiler; libgomp1-arm64-cross: OpenMP)
#   qemu-user                          qemu-aarch64: runs aarch64 Linux programs on this machine
#   libcmocka-dev:arm64, libgomp1:arm64  the C unit tests' framework and the OpenMP runtime, for
#                                      arm64 (needs `dpkg --add-architecture arm64`; brings libc6:arm64):
#                                      qemu-aarch64 runs the binaries on these, from /usr/lib/aarch64-linux-gnu
#                                      (the loader /lib/ld-linux-aarch64.so.1 finds them there)
set -euo pipefail
packages=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross libgomp1-arm64-cross qemu-user libcmocka-dev:arm64 libgomp1:arm64)
# arm64's packages exist for apt only once dpkg knows the architecture (with every
# package installed it already does, and nothing runs as root)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo dpkg --add-architecture arm64
fi
"$(dirname "$0")/apt_install.sh" "cross dependencies" "${packages[@]}"
