"""How steady the correction is on real clips: the model's window δ (temporal fusion on) against δ = 1.

Each clip goes through the whole pipeline twice, losslessly encoded (ffv1), with the weights'
own δ and with ``--window 1``. For every pair of consecutive frames, DIS optical flow measured on
the INPUT frames (occluded pixels left out) carries the previous frame's correction (output −
input) onto the current frame; the report gives the mean absolute difference between the two
(8-bit levels) over the pixels where either correction is non-zero: how much the correction
changes along the motion, i.e. how much a retouched spot shimmers. Also the pixels changed by
more than 5 levels per frame, so a steadier correction cannot hide a smaller one.

    python benchmarks/real_temporal.py [--weights W] [--videos DIR] [--clips a.mp4,b.mp4] [--json runs/real_temporal.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from _report import emit  # noqa: E402  (benchmarks/_report.py, beside this script)

CLIPS = "woman_720p_headturn.mp4,talking_512_noaudio.mp4"


def _frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def steadiness(source: list[np.ndarray], output: list[np.ndarray]) -> dict:
    import cv2

    from vretouch_cli.dis_flow import FlowEstimator, warp

    flow_of = FlowEstimator()
    err = count = changed = 0.0
    for t in range(1, len(source)):
        cur = cv2.cvtColor(source[t], cv2.COLOR_RGB2GRAY)
        prev = cv2.cvtColor(source[t - 1], cv2.COLOR_RGB2GRAY)
        flow, valid = flow_of.backward(cur, prev)
        d1 = output[t].astype(np.float32) - source[t].astype(np.float32)
        d0 = warp(output[t - 1].astype(np.float32) - source[t - 1].astype(np.float32), flow)
        where = valid & ((np.abs(d1).max(axis=2) > 0) | (np.abs(d0).max(axis=2) > 0))
        err += float(np.abs(d1 - d0).mean(axis=2)[where].sum())
        count += float(where.sum())
        changed += float((np.abs(d1).max(axis=2) > 5).sum())
    pairs = max(len(source) - 1, 1)
    return {
        "correction_change_levels": err / max(count, 1.0),
        "corrected_pixels_per_frame": count / pairs,
        "changed_gt5_pixels_per_frame": changed / pairs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights file (default: the shipped default)")
    parser.add_argument("--videos", type=Path, default=REPO.parent / "shared" / "data" / "videos")
    parser.add_argument("--clips", default=CLIPS, help="comma-separated file names inside --videos")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from vretouch_cli.pipeline import retouch_video

    report: dict = {"weights": args.weights or "default"}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.clips.split(","):
            clip = args.videos / name
            if not clip.exists():
                sys.exit(f"{clip} not found (the shared videos are needed: --videos DIR)")
            source = _frames(clip)
            row: dict = {"frames": len(source)}
            for label, window in (("model_delta", None), ("delta_1", 1)):
                out = Path(tmp) / f"{clip.stem}_{label}.mkv"
                started = time.perf_counter()
                retouch_video(clip, out, weights=args.weights, device="cpu", window=window, codec="ffv1", crf=None)
                row[label] = steadiness(source, _frames(out)) | {"seconds": time.perf_counter() - started}
            report[name] = row
            print(f"{name}: correction change {row['model_delta']['correction_change_levels']:.4f} levels with the "
                  f"model's δ, {row['delta_1']['correction_change_levels']:.4f} with δ = 1", flush=True)
    emit(report, args.json)


if __name__ == "__main__":
    main()
