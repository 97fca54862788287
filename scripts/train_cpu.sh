#!/usr/bin/env bash
# The CPU recipe of the shipped default weights (weights/README.md), end to end, on a 2-core machine:
# align the clean photos once, cache the training pairs, stage 1 (δ = 1 patches), stage 2 (δ = 3
# patches, from stage 1's weights), export fp16 EMA weights.
#
#   bash scripts/train_cpu.sh [PHOTOS] [RUN] [STAGE1_MINUTES] [STAGE2_MINUTES] [INIT_WEIGHTS]
#
# PHOTOS defaults to ../shared/data/faces; RUN to runs/cpu_recipe. INIT_WEIGHTS (optional, e.g.
# weights/vretouch-tiny.safetensors) continues from earlier weights instead of starting afresh —
# how a later session picks up where this one stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTOS=${1:-../shared/data/faces}
RUN=${2:-runs/cpu_recipe}
M1=${3:-68}
M2=${4:-25}
INIT=${5:-}
VT=.venv/bin/vretouch
[ -x "$VT" ] || { echo "run 'bash scripts/test.sh' (or install the package) first" >&2; exit 1; }

PREP=.devdata/faces512
CACHE=.devdata/cache256
[ -f "$PREP/prepared.json" ] || "$VT" train --prepare-faces "$PHOTOS" -o "$PREP" --size 512
[ -f "$CACHE/cache.json" ] || "$VT" train --build-cache "$PREP" -o "$CACHE" --size 256 --cache-variants 10

COMMON=(--data "$CACHE" --preset tiny --objective balanced --model-option fill=normconv
        --model-option head_channels=16 --model-option head_highpass=true --vgg-weights none --w-adv 0 --gt-scale 0.03
        --lr 5e-4 --val-every 500 --val-items 12 --log-every 20 --ckpt-every 0
        --ckpt-minutes 10 --device cpu)
"$VT" train "${COMMON[@]}" --out "$RUN/stage1" --window 1 --batch-size 4 --steps 1000000 --max-minutes "$M1" ${INIT:+--init "$INIT"}
# Stage 2: the LR decays (cosine) to a tenth over the steps the time allows (about 2 steps/s on
# 2 cores with the temporal term's second forward pass); --max-minutes is only a guard.
"$VT" train "${COMMON[@]}" --out "$RUN/stage2" --window 3 --batch-size 2 --steps $((M2 * 120)) --max-minutes $((M2 + 5)) \
    --init "$RUN/stage1/weights_ema.safetensors" --lr 2e-4 --lr-final 0.1 --w-temporal 20
"$VT" train --export "$RUN/stage2" -o "$RUN/vretouch-tiny.safetensors" --export-dtype fp16 --overwrite
echo "weights: $RUN/vretouch-tiny.safetensors (evaluate: python benchmarks/heldout_eval.py --weights ...)"
