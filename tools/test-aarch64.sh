#!/usr/bin/env bash
# The CPU engine's aarch64 NEON kernels (src/engine/cpu/neon.rs) tested on an x86 machine: cross-built
# for aarch64-unknown-linux-gnu and run under qemu-user. Installs what it needs first (idempotent):
# qemu-user, the aarch64 GNU toolchain (linker, libc) and the Rust target. Linker and runner are set
# here, in the environment, not in a global cargo config (native and wasm builds are unaffected).
#   1. tests/cpu_engine.rs under qemu's default CPU (`max`: NEON + dotprod): every kernel on the scalar,
#      the plain NEON and the `sdot` path against the f64 product and against each other (odd shapes,
#      tails of blocks, outliers), tiny-gpt2's logits and hidden states against the Hugging Face
#      fixture, greedy continuation, KV cache = recompute, every quantization's bounds.
#   2. `gpt2 info --device cpu` under a CPU with and without dotprod (qemu's `max` and `cortex-a57`):
#      run-time detection picks `neon+dotprod` and `neon`.
#   3. the kernel test again under cortex-a57 (no dotprod: the paths are scalar and plain NEON).
# Timings under qemu say nothing about speed on ARM hardware.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

target=aarch64-unknown-linux-gnu
missing=()
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || missing+=(libc6-dev-arm64-cross)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (cross-building for aarch64 and running it under qemu)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup target list --installed | grep -q "^$target\$" || rustup target add "$target"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# ring (under ureq) builds C for the target.
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
unset QEMU_CPU

log "cargo test --target $target --test cpu_engine (qemu -cpu max: scalar, neon, neon+dotprod)"
cargo test --target "$target" --test cpu_engine

log "gpt2 info --device cpu under qemu: run-time detection with and without dotprod"
cargo build --target "$target" --bin gpt2
bin="${CARGO_TARGET_DIR:-target}/$target/debug/gpt2"
check_simd() {
    local cpu="$1" want="$2" got
    got="$(QEMU_CPU="$cpu" qemu-aarch64 -L /usr/aarch64-linux-gnu "$bin" info --device cpu | sed -n 's/^simd: //p')"
    echo "qemu -cpu $cpu: simd: $got"
    if [ "$got" != "$want" ]; then
        echo "expected simd: $want on qemu -cpu $cpu, got '$got'" >&2
        exit 1
    fi
}
check_simd max neon+dotprod
check_simd cortex-a57 neon

log "the kernel test under qemu -cpu cortex-a57 (no dotprod: scalar and neon)"
QEMU_CPU=cortex-a57 cargo test --target "$target" --test cpu_engine linear_kernels
