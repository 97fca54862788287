"""What the default weights do to real faces (issue 6): over-smoothing check, contact sheets, CPU fps.

1. Clean skin must stay as it is: on a clip of a person with clean skin, the share of
   face-region pixels (the pipeline's feathered face mask > 0.5) that change by more than 5
   levels (any channel), over every frame.
2. Before/after contact sheets (face crops, the retouched crops and the change ×8) of a few
   frames of other clips, for a person to look at.
3. End-to-end CPU frames per second at 720p (decode … encode, libx264), with per-stage times.

    python benchmarks/real_clips.py --videos ../shared/data/videos --out runs/real_clips [--weights W]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def changed_share(video: Path, weights, duration: float | None) -> dict:
    from vretouch_cli.face.paste import face_region_mask, warp_mask_to_frame
    from vretouch_cli.pipeline import open_stream

    stream = open_stream(video, weights=weights, device="cpu", duration=duration)
    face_px = changed = frames = 0
    max_change = 0
    for result in stream:
        frames += 1
        diff = np.abs(result.retouched.astype(np.int32) - result.frame.image.astype(np.int32)).max(axis=2)
        max_change = max(max_change, int(diff.max()))
        for face in result.faces:
            region = warp_mask_to_frame(face_region_mask(face.mask_crop.shape[0]), face.affine, diff.shape, region=False) > 0.5
            face_px += int(region.sum())
            changed += int((diff[region] > 5).sum())
    stream.source.close()
    return {"frames": frames, "face_pixels": face_px, "changed_gt5": changed,
            "changed_gt5_percent": 100.0 * changed / max(face_px, 1), "max_change": max_change}


def contact_sheet(video: Path, weights, out_png: Path, picks: int = 4, duration: float | None = None) -> dict:
    import cv2

    from vretouch_cli.face.align import estimate_alignment
    from vretouch_cli.pipeline import open_stream

    stream = open_stream(video, weights=weights, device="cpu", duration=duration)
    results = [r for r in stream if r.faces]
    stream.source.close()
    rows = []
    idx = np.linspace(0, len(results) - 1, picks).round().astype(int)
    for i in idx:
        r = results[int(i)]
        face = r.faces[0]
        size = 320
        scale = size / face.mask_crop.shape[0]
        m = face.affine.copy()
        m[:, :] *= scale
        before = cv2.warpAffine(r.frame.image, m, (size, size), flags=cv2.INTER_AREA)
        after = cv2.warpAffine(r.retouched, m, (size, size), flags=cv2.INTER_AREA)
        change = np.clip(np.abs(after.astype(np.int16) - before.astype(np.int16)) * 8, 0, 255).astype(np.uint8)
        rows.append(np.concatenate([before, after, change], axis=1))
    sheet = np.concatenate(rows, axis=0)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return {"sheet": str(out_png), "frames_with_face": len(results), "picked": idx.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=REPO.parent / "shared" / "data" / "videos")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "real_clips")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--duration", type=float, default=None, help="only the first D seconds of each clip")
    args = parser.parse_args()
    from vretouch_cli.pipeline import retouch_video

    report = {}
    report["clean_skin_woman_720p_headturn"] = changed_share(args.videos / "woman_720p_headturn.mp4", args.weights, args.duration)
    print(json.dumps(report, indent=1), flush=True)
    for name in ("talking_512_noaudio", "woman_talking_360p_pexels"):
        report[f"sheet_{name}"] = contact_sheet(args.videos / f"{name}.mp4", args.weights, args.out / f"{name}_before_after.png", duration=args.duration)
        print(json.dumps(report[f"sheet_{name}"]), flush=True)
    run = retouch_video(args.videos / "woman_720p_headturn.mp4", args.out / "headturn_2s.mp4", weights=args.weights,
                        device="cpu", duration=2.0, overwrite=True)
    report["cpu_720p"] = {"frames": run.frames, "fps": run.fps, "ms_per_frame": run.ms_per_frame()}
    print(json.dumps(report, indent=1))
    (args.out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
