#!/usr/bin/env bash
# Train preset `small` on one GPU for a fixed time budget (bf16), export the EMA weights and print
# the held-out validation metrics (PSNR gain over the raw input, SSIM, Soft-IoU).
#
#   bash scripts/gpu_train.sh [RUN_DIR] [MINUTES]        # from the repository root, on the GPU box
#
# Inputs, made once on any machine (both under .devdata/, which git ignores; ~28 MB together, so
# they can travel with the working tree to a GPU box that cannot reach ../shared):
#   .devdata/faces512/   vretouch train --prepare-faces ../shared/data/faces -o .devdata/faces512 --size 512
#   .devdata/vgg16_relu4_3_fp16.safetensors
#                        python scripts/slim_vgg.py ../shared/weights/vgg16_lpips.safetensors .devdata/vgg16_relu4_3_fp16.safetensors
#
# Knobs (environment): PRESET (small), SIZE (face crop S, default 512), DEVICE (cuda), PRECISION
# (bf16), BATCH (clips per step, 8), WORKERS (data
# processes, 12 of the box's 16 cores), VAL_EVERY (500 steps), VAL_ITEMS (48), CKPT_MINUTES (2),
# DATA, VGG, PYTHON (python3). Validation holds out ~20 % of the people (by person number).
# A RUN_DIR that already holds a checkpoint is resumed with a new time budget.
# When $OUT is set (the device tool's return folder), the deliverables are copied there: fp16 EMA
# weights (under its 16 MiB per-file limit), log.jsonl, plot.png, the validation sheet, summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
RUN=${1:-runs/gpu_small}
MINUTES=${2:-8}
DATA=${DATA:-.devdata/faces512}
VGG=${VGG:-.devdata/vgg16_relu4_3_fp16.safetensors}
SIZE=${SIZE:-512}
PRESET=${PRESET:-small}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-8}
WORKERS=${WORKERS:-12}
VAL_EVERY=${VAL_EVERY:-500}
VAL_ITEMS=${VAL_ITEMS:-48}
CKPT_MINUTES=${CKPT_MINUTES:-2}
PRECISION=${PRECISION:-bf16}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

[ -f "$DATA/prepared.json" ] || { echo "missing $DATA/prepared.json (see the header of $0)" >&2; exit 2; }
if [ ! -f "$VGG" ]; then
  echo "warning: $VGG is missing: training WITHOUT the perceptual loss" >&2
  VGG=none
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# `python -m vretouch_cli.train` is `vretouch train` with only the training command registered.
if [ -f "$RUN/checkpoints/latest" ]; then
  "$PY" -m vretouch_cli.train --out "$RUN" --resume --steps 10000000 --max-minutes "$MINUTES" \
    --workers "$WORKERS" --device "$DEVICE"
else
  "$PY" -m vretouch_cli.train --data "$DATA" --out "$RUN" --preset "$PRESET" --size "$SIZE" \
    --precision "$PRECISION" --batch-size "$BATCH" --workers "$WORKERS" --steps 10000000 \
    --max-minutes "$MINUTES" --ckpt-minutes "$CKPT_MINUTES" --ckpt-every 0 \
    --val-every "$VAL_EVERY" --val-items "$VAL_ITEMS" --val-fraction 0.2 \
    --vgg-weights "$VGG" --log-every 25 --device "$DEVICE"
fi

"$PY" -m vretouch_cli.train --export "$RUN" -o "$RUN/weights_ema_fp16.safetensors" --export-dtype fp16

# Held-out metrics of the EMA generator (people never seen in training), and the run's speed.
"$PY" - "$RUN" <<'PYEOF'
import json, sys
run = sys.argv[1]
recs = [json.loads(line) for line in open(f"{run}/log.jsonl")]
val = [r for r in recs if r["kind"] == "val"]
train = [r for r in recs if r["kind"] == "train"]
end = [r for r in recs if r["kind"] == "end"][-1]
start = [r for r in recs if r["kind"] == "start"][0]
summary = {
    "steps": end["step"],
    "seconds": end["seconds"],
    "stopped_by_time": end["stopped_by_time"],
    "info": start["info"],
    "steps_per_s_last": train[-1]["steps_per_s"] if train else None,
    "final_val": val[-1]["metrics"] if val else None,
    "val_history": [{"step": r["step"], **{k: round(v, 4) for k, v in r["metrics"].items()}} for r in val],
}
json.dump(summary, open(f"{run}/summary.json", "w"), indent=1)
m = summary["final_val"] or {}
print(f"\nheld-out validation after {end['step']} steps ({m.get('n')} clips of unseen people, EMA weights):")
print(f"  PSNR {m.get('psnr', float('nan')):.2f} dB vs raw input {m.get('psnr_raw', float('nan')):.2f} dB"
      f" -> gain {m.get('psnr_gain', float('nan')):+.3f} dB")
print(f"  SSIM {m.get('ssim', float('nan')):.4f}   Soft-IoU {m.get('soft_iou', float('nan')):.4f}"
      f"   flow EPE {m.get('flow_epe', float('nan')):.3f} px")
print(json.dumps(summary["val_history"]))
PYEOF

if [ -n "${OUT:-}" ]; then
  cp "$RUN/weights_ema_fp16.safetensors" "$RUN/log.jsonl" "$RUN/plot.png" "$RUN/summary.json" "$OUT/" 2>/dev/null || true
  cp "$RUN/samples/val_latest.png" "$OUT/val_samples.png" 2>/dev/null || true
  ls -la "$OUT"
fi
