#!/usr/bin/env bash
# The GPU engine on a real GPU (issue 9's point 9): gpt2 and gpt2-xl with random weights, q8 and f16, through
# `gpt2 bench --json` (prefill of 128 tokens, 128 greedy decode tokens), the op profile of gpt2 q8, and
# `gpt2 verify` of a gpt2 q8 package against the f64 reference (the GPU tuning's kernels checked end to end
# on hardware). Runs where there is no cargo (the device machine): give it a built CLI.
#
#   BIN=target/release/gpt2 OUT=/tmp/device-bench tools/device-bench.sh
# Each command has its own timeout; results go to $OUT (bench.jsonl, verify.json, info.txt, log.txt).
set -u
BIN=${BIN:-target/release/gpt2}
OUT=${OUT:-/tmp/device-bench}
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
log() { printf '== %s %s\n' "$(date +%T)" "$*" | tee -a "$OUT/log.txt" >&2; }

log "info"
timeout 60 "$BIN" info --device gpu >"$OUT/info.txt" 2>&1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>"$OUT/info.txt" 2>&1
for size in gpt2 gpt2-xl; do
    log "random $size"
    timeout 180 "$BIN" random --size "$size" --dtype f16 --out "$W/$size" >>"$OUT/log.txt" 2>&1 || { log "random $size failed"; continue; }
    if [ "$size" = gpt2 ]; then
        log "convert + verify gpt2 q8"
        timeout 120 "$BIN" convert "$W/gpt2" --quant q8 --out "$W/gpt2-q8" >>"$OUT/log.txt" 2>&1 &&
            timeout 180 "$BIN" verify --model "$W/gpt2-q8" --reference "$W/gpt2" --tokens 16 >"$OUT/verify.json" 2>>"$OUT/log.txt"
        log "profile gpt2 q8"
        timeout 120 "$BIN" bench --model "$W/gpt2" --weights q8 --device gpu --prompt-tokens 128 --decode-tokens 64 --profile >"$OUT/profile.txt" 2>&1
    fi
    log "bench $size"
    timeout 240 "$BIN" bench --model "$W/$size" --weights q8,f16 --device gpu --prompt-tokens 128 --decode-tokens 128 --json >>"$OUT/bench.jsonl" 2>>"$OUT/log.txt"
    rm -rf "$W/$size"
done
log "done"
