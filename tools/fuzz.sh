#!/usr/bin/env bash
# Fuzz every parser that reads outside bytes for SECONDS each (default 60): the safetensors reader,
# config.json, manifest.json (+ the stream of its shards), PackageStream (random shard splits,
# truncation, bit flips) and the tokenizer's streaming decoder. In-process on stable Rust
# (examples/fuzz): a seeded mutator, structure-aware for JSON, with oracles where one exists.
# Prints executions per target; exits non-zero on any panic, crash or oracle failure (the input is
# saved under $CARGO_TARGET_DIR/fuzz-findings).
#   tools/fuzz.sh [SECONDS] [TARGET...]      e.g. tools/fuzz.sh 120 package-stream
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
# The dev profile (our crate at opt-level 1, dependencies at 2): it shares the build `cargo test` makes.
cargo build --example fuzz
exec "${CARGO_TARGET_DIR:-target}/debug/examples/fuzz" --seconds "$seconds" "$@"
