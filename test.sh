#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first (idempotent), so a fresh clone on
# a fresh Debian machine passes with nothing but Rust and network access to the package registries.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\n== %s\n' "$*" >&2; }

# ---- prerequisites ----------------------------------------------------------------------------
missing=()
[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
ldconfig -p | grep -q 'libvulkan.so.1' || missing+=(libvulkan1)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (Mesa lavapipe: a Vulkan driver on the CPU, for the GPU tests)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# ---- the wasm build must stay clean (build.sh builds it in release for the browser tests) ----------
if [ "${BROWSER_TESTS:-1}" = 0 ]; then
    log "cargo build --target wasm32-unknown-unknown"
    cargo build --lib --target wasm32-unknown-unknown
fi

# ---- native tests: kernels, model vs fixtures, tokenizer, loaders, CLI (GPU tests on lavapipe) ----
log "cargo test (serial: lavapipe is one CPU device)"
export WGPU_BACKEND=vulkan
cargo test --all-targets -- --test-threads=1

# ---- fuzzing, briefly (tools/fuzz.sh SECONDS runs longer): any panic fails the suite ----------------
log "tools/fuzz.sh 3 (3 s per target)"
tools/fuzz.sh 3

# ---- browser tests: the page in headless Debian Chromium (SwiftShader WebGPU), via playwright-core ----
# BROWSER_TESTS=0 skips them (e.g. on a machine without apt). Chromium comes from Debian, never from
# `npx playwright install`.
if [ "${BROWSER_TESTS:-1}" != 0 ]; then
    bmissing=()
    [ -x /usr/lib/chromium/chromium ] || bmissing+=(chromium)
    command -v chromedriver >/dev/null || bmissing+=(chromium-driver)
    command -v node >/dev/null || bmissing+=(nodejs)
    command -v npm >/dev/null || bmissing+=(npm)
    if [ ${#bmissing[@]} -gt 0 ]; then
        log "installing ${bmissing[*]} (headless browser tests)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${bmissing[@]}" >/dev/null
    fi
    log "npm ci (tests/browser: playwright-core, binaryen's wasm-opt)"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
    log "./build.sh (wasm, www/pkg, www/models)"
    ./build.sh
    log "browser tests"
    (cd tests/browser && node run.mjs)
    log "type checks (tests/types: tsc --noEmit --strict on www/gpt2.d.ts as an npm consumer sees it)"
    (cd tests/types && npm ci --no-audit --no-fund --loglevel=error && node run.mjs)
fi
