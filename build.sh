#!/usr/bin/env bash
# Builds the web page into www/: the wasm module (release, wasm-bindgen --target web, wasm-opt when a
# working one is available), the tiny test model as packages, and www/models/index.json.
#   ./build.sh                 build
#   ./build.sh serve [--model NAME|DIR] [--port P]
#                              build, make sure a real model is there (default: gpt2 at q8, downloaded
#                              from the Hugging Face hub and converted if absent; DIR = a local Hugging
#                              Face folder to convert), then serve www/ on http://127.0.0.1:P/ (8000)
# Environment: CARGO_TARGET_DIR is respected; SKIP_WASM_OPT=1 skips wasm-opt.
set -euo pipefail
cd "$(dirname "$0")"
log() { printf '== %s\n' "$*" >&2; }

mode=build
port=8000
model=gpt2
while [ $# -gt 0 ]; do
    case "$1" in
        serve) mode=serve ;;
        --port) port="$2"; shift ;;
        --model) model="$2"; shift ;;
        --model=*) model="${1#--model=}" ;;
        --port=*) port="${1#--port=}" ;;
        -h|--help) sed -n 2,6p "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

target_dir="${CARGO_TARGET_DIR:-target}"

# ---- wasm-bindgen CLI: exactly the version in Cargo.lock -----------------------------------
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
    log "installing wasm-bindgen-cli $want (found: ${have:-none})"
    cargo install wasm-bindgen-cli --version "$want" --locked || cargo install wasm-bindgen-cli --version "$want"
fi

# ---- wasm ----------------------------------------------------------------------------------
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
log "cargo build --lib --release --target wasm32-unknown-unknown"
cargo build --lib --release --target wasm32-unknown-unknown
log "wasm-bindgen --target web --out-dir www/pkg"
rm -rf www/pkg
wasm-bindgen --target web --no-typescript --out-dir www/pkg "$target_dir/wasm32-unknown-unknown/release/gpt2_webgpu.wasm"

# wasm-opt: the npm `binaryen` package (tests/browser installs it). Debian's binaryen 108 emits wasm
# that Chromium rejects, so a wasm-opt older than 116 is not used.
wasm_opt=""
for c in tests/browser/node_modules/.bin/wasm-opt node_modules/.bin/wasm-opt "$(command -v wasm-opt || true)"; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    v=$("$c" --version 2>/dev/null | grep -o 'version [0-9]*' | awk '{print $2}')
    if [ -n "$v" ] && [ "$v" -ge 116 ]; then wasm_opt="$c"; break; fi
    log "ignoring $c (binaryen ${v:-?}: too old, its output breaks Chromium)"
done
if [ "${SKIP_WASM_OPT:-0}" = 1 ]; then
    log "wasm-opt skipped (SKIP_WASM_OPT=1)"
elif [ -n "$wasm_opt" ]; then
    log "wasm-opt -O ($wasm_opt)"
    "$wasm_opt" -O --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-reference-types --enable-multivalue \
        www/pkg/gpt2_webgpu_bg.wasm -o www/pkg/gpt2_webgpu_bg.opt.wasm
    mv www/pkg/gpt2_webgpu_bg.opt.wasm www/pkg/gpt2_webgpu_bg.wasm
else
    log "wasm-opt not found (npm install in tests/browser provides one): the wasm is left unoptimised"
fi
ls -l www/pkg >&2

# ---- models --------------------------------------------------------------------------------
# The CLI runs in the dev profile (our crate at opt-level 1, dependencies at 2): it shares the build that
# `cargo test` makes, and converting is I/O-bound anyway.
fixture=tests/fixtures/tiny-gpt2
convert() { # quant name shard_bytes
    local out="www/models/$2"
    if [ -f "$out/manifest.json" ] && [ "$out/manifest.json" -nt "$fixture/model.safetensors" ] \
        && [ -z "$(find src/package -newer "$out/manifest.json")" ]; then
        return
    fi
    log "converting $fixture -> $out ($1)"
    cargo run -q --bin gpt2 -- convert "$fixture" --quant "$1" --name tiny-gpt2 --out "$out" --shard-bytes "$3"
}
# Small shards (16 MiB) so the tiny model exercises multi-shard download, caching and verification.
convert f32 tiny-gpt2-f32 16777216
convert q8 tiny-gpt2-q8 16777216

# ---- a real model for `serve` ---------------------------------------------------------------
if [ "$mode" = serve ]; then
    if [ -d "$model" ]; then # a local Hugging Face folder
        name=$(basename "$(cd "$model" && pwd)")
        if [ ! -f "www/models/$name-q8/manifest.json" ]; then
            log "converting $model -> www/models/$name-q8"
            cargo run -q --bin gpt2 -- convert "$model" --quant q8 --name "$name" --out "www/models/$name-q8"
        fi
    elif [ ! -f "www/models/$model-q8/manifest.json" ]; then
        log "fetching $model from the Hugging Face hub (once; kept in .models/$model)"
        if cargo run -q --bin gpt2 -- download "$model" --out ".models/$model"; then
            cargo run -q --bin gpt2 -- convert ".models/$model" --quant q8 --name "$model" --out "www/models/$model-q8"
        else
            log "could not download $model: serving what www/models has (the tiny test model has random weights, so its text is gibberish)."
            log "to use a real model offline, pass a Hugging Face folder: ./build.sh serve --model /path/to/gpt2"
        fi
    fi
fi

python3 - <<'PY'
import json, os
root = "www/models"
out = []
for name in sorted(os.listdir(root)):
    m = os.path.join(root, name, "manifest.json")
    if not os.path.isfile(m):
        continue
    man = json.load(open(m))
    out.append({
        "name": name,
        "path": f"models/{name}/",
        "model": man["model"],
        "quantization": man["quantization"],
        "bytes": man["total_bytes"] + man["tokenizer"]["bytes"],
        # The tiny test model's weights are random: its text is gibberish by design.
        "random_weights": man["model"] == "tiny-gpt2",
    })
json.dump({"models": out}, open(os.path.join(root, "index.json"), "w"), indent=2)
print("www/models/index.json:", ", ".join(m["name"] for m in out))
PY

# ---- the service worker's build id ------------------------------------------------------------
# A hash of the app shell: a new build gets a new shell cache, so an update never mixes old JS with new wasm.
build_id=$(ls www/*.html www/*.js www/*.css www/pkg/* | grep -v "^www/version.js$" | sort | xargs cat | sha256sum | cut -c1-16)
printf '// Written by build.sh: the app shell'"'"'s build id (sw.js names its cache after it).\nself.GPT2_BUILD = "%s";\n' "$build_id" > www/version.js
log "www/version.js: build $build_id"

if [ "$mode" = serve ]; then
    exec python3 tools/serve.py --port "$port" --dir www
fi
