#!/usr/bin/env bash
# Every GPT-2 size, proven: random checkpoints with the real shapes of distilgpt2, gpt2, gpt2-medium,
# gpt2-large and gpt2-xl (Hugging Face layout, f16), converted to q8 (gpt2-xl also q4), each loaded on the
# GPU (natively: lavapipe unless a real GPU is there), 4 greedy tokens generated, and the logits at the
# last position of a prompt checked against the f64 CPU reference (src/reference/cpu.rs) on the same
# weights, within the bound the quantization's weight error allows (`gpt2 verify`). Then, in headless
# Chromium (SwiftShader WebGPU), gpt2-medium q8 and gpt2-xl q4 are streamed in and generate 2 tokens
# (tests/browser/sizes.mjs). Prints one JSON line per run and a table at the end.
#
# Slow (about an hour on 2 CPU cores) and big (gpt2-xl: 3.2 GB f16 + 1.7 GB q8 + 1.0 GB q4 on disk,
# 6.2 GB of memory for the reference): not part of ./test.sh or CI. Models go to WORK (default
# /tmp/gpt2-all-sizes) and are deleted size by size unless --keep.
#   tools/all-sizes.sh [--sizes distilgpt2,gpt2,...] [--no-browser] [--no-native] [--keep] [--work DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
sizes="distilgpt2,gpt2,gpt2-medium,gpt2-large,gpt2-xl"
native=1 browser=1 keep=0 work=/tmp/gpt2-all-sizes
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes="$2"; shift ;;
        --no-browser) browser=0 ;;
        --no-native) native=0 ;;
        --keep) keep=1 ;;
        --work) work="$2"; shift ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        *) echo "all-sizes.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
log() { printf '== %s\n' "$*" >&2; }
mkdir -p "$work"
results="$work/results.jsonl"
: > "$results"
export WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
# The GPU-wait deadline (300 s by default) is a hang detector; a CPU-emulated GPU is not hung but slow:
# on lavapipe with 2 busy cores one gpt2-xl step takes ~30 s, and its 9-token prompt over 300 s.
export GPT2_GPU_TIMEOUT_S="${GPT2_GPU_TIMEOUT_S:-3600}"
cargo build --release --bin gpt2
gpt2="${CARGO_TARGET_DIR:-target}/release/gpt2"
case "$gpt2" in /*) ;; *) gpt2="$root/$gpt2" ;; esac

# Package bytes: every file listed in its manifest (shards + tokenizer.json) and the manifest itself.
package_bytes() { du -cb --apparent-size "$1"/* | tail -1 | cut -f1; }

# The formats each size is checked in, and which packages the browser part needs afterwards.
formats() { if [ "$1" = gpt2-xl ]; then echo "q8 q4"; else echo q8; fi; }
needed_by_browser() { [ "$browser" = 1 ] && { [ "$1" = gpt2-medium-q8 ] || [ "$1" = gpt2-xl-q4 ]; }; }

for size in ${sizes//,/ }; do
    want_native=$native
    need_pkg=0
    for q in $(formats "$size"); do needed_by_browser "$size-$q" && need_pkg=1; done
    [ "$want_native" = 1 ] || [ "$need_pkg" = 1 ] || continue
    hf="$work/$size-hf"
    if [ ! -f "$hf/model.safetensors" ]; then
        log "gpt2 random --size $size --dtype f16"
        "$gpt2" random --size "$size" --dtype f16 --out "$hf"
    fi
    for q in $(formats "$size"); do
        pkg="$work/$size-$q"
        [ -f "$pkg/manifest.json" ] || { log "gpt2 convert $size --quant $q"; "$gpt2" convert "$hf" --quant "$q" --name "$size-$q" --out "$pkg"; }
        if [ "$want_native" = 1 ]; then
            log "gpt2 verify $size $q"
            # Outside the bound, verify still prints its line (with "ok": false) and the table says FAIL.
            line=$("$gpt2" verify --model "$pkg" --reference "$hf" --tokens 4) || true
            if [ -z "$line" ]; then  # it failed before measuring (its error is above): a row that says so
                line="{\"quantization\": \"$q\", \"ok\": false, \"error\": true}"
            fi
            echo "$line" | python3 -c "import json,sys; r=json.load(sys.stdin); r.update(size='$size', where='native', package_bytes=$(package_bytes "$pkg")); print(json.dumps(r))" >> "$results"
            tail -1 "$results"
        fi
        needed_by_browser "$size-$q" || [ "$keep" = 1 ] || rm -rf "$pkg"
    done
    [ "$keep" = 1 ] || rm -rf "$hf"
done

if [ "$browser" = 1 ]; then
    [ -f www/pkg/gpt2_webgpu_bg.wasm ] || { log "./build.sh (the wasm module)"; ./build.sh; }
    args=()
    for p in gpt2-medium-q8 gpt2-xl-q4; do [ -f "$work/$p/manifest.json" ] && args+=(--package "$p=$work/$p"); done
    if [ ${#args[@]} -gt 0 ]; then
        (cd tests/browser && { [ -d node_modules ] || npm ci; } && node sizes.mjs "${args[@]}" --out "$results.browser")
        cat "$results.browser" >> "$results"
    fi
    [ "$keep" = 1 ] || rm -rf "$work/gpt2-medium-q8" "$work/gpt2-xl-q4"
fi

python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| where | model | package MB | load s | peak memory MB | GPU MB | max abs dlogit (bound) | tokens/s |")
print("|---|---|---:|---:|---:|---:|---|---:|")
for r in rows:
    if r.get("error"):
        print(f"| {r['where']} | {r['size']} {r['quantization']} | verify failed: see its error above |")
        continue
    name = f"{r.get('size', r.get('model'))} {r['quantization']}"
    if r["where"] == "native":
        mem = f"{r['peak_rss_model'] / 1e6:.0f} (RSS)"
        err = f"{r['max_abs']:.3g} ({r['bound_max_abs']:.3g})" + ("" if r["ok"] else " FAIL")
    else:
        mem = f"{r['wasm_bytes'] / 1e6:.0f} (wasm)"
        err = "-"
    print(f"| {r['where']} | {name} | {r['package_bytes'] / 1e6:.1f} | {r['load_s']:.1f} | {mem} | {r['gpu_bytes'] / 1e6:.1f} | {err} | {r['decode_tokens_per_s']:.2f} |")
bad = [r for r in rows if not r.get("ok", True)]
sys.exit(1 if bad else 0)
EOF
