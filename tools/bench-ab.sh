#!/bin/bash
# Two builds of `gpt2` benched alternately on the same package (these machines are noisy: only ratios
# taken back to back mean anything), prompts of 32 and 128 tokens, two rounds, with the load average.
# Usage: tools/bench-ab.sh BEFORE_GPT2 AFTER_GPT2 [PACKAGE_DIR (default /tmp/g2-q8)] [extra bench flags]
# Make the package with: gpt2 random --size gpt2 --out /tmp/g2 && gpt2 convert /tmp/g2 --quant q8 --out /tmp/g2-q8
set -euo pipefail
before=${1:?before binary}; after=${2:?after binary}; model=${3:-/tmp/g2-q8}; shift $(( $# < 3 ? $# : 3 ))
for pt in 32 128; do
  for round in 1 2; do
    for b in "$before" "$after"; do
      load=$(cut -d' ' -f1 /proc/loadavg)
      json=$("$b" bench --model "$model" --device gpu --prompt-tokens "$pt" --decode-tokens 16 --json "$@" 2>/dev/null | head -1)
      python3 - "$json" "$b" "$pt" "$load" <<'PY'
import json, sys
o = json.loads(sys.argv[1])
print(f"{sys.argv[2]:<40} prompt {sys.argv[3]:>4}  prefill {o['prefill_tok_s']:7.2f}  decode {o['decode_tok_s']:7.2f} tok/s  "
      f"ref gemv {o['ref_gemv_q8_gb_s']:.3f}  own gemv {o['tuning_gemv_q8_gb_s']:.3f} GB/s  load {sys.argv[4]}")
PY
    done
  done
done
