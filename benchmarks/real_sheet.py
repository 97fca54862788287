"""What the default weights do to real faces, through the whole pipeline (issue 10's real-footage check).

Frames of the shared videos (several cameras, resolutions and compressions) and held-out studio
photos (people never trained on) go through ``vretouch``'s own stream (detect, track, align, model,
paste-back). For each picked frame the sheet shows the face as it was, as it comes out, and the
change ×16 (changes are small); the report gives the share of face-region pixels (the pipeline's face ellipse > 0.5)
changed by more than 5 levels, and that share on the features (eyes, brows, nostrils, lips).

    python benchmarks/real_sheet.py --out docs/retouch_sheet.png [--weights W] [--json runs/real_sheet.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

VIDEOS = (  # (file, frame indices to show)
    ("talking_512_noaudio.mp4", (20,)),
    ("woman_720p_headturn.mp4", (10, 120)),
    ("woman_talking_360p_pexels.mp4", (100,)),
    ("selfie_portrait_720x1280.mp4", (60,)),
    ("man_360p_mp3audio.mp4", (30,)),
)


def _frames(path: Path, picks: tuple[int, ...], weights) -> list[tuple[str, object]]:
    from vretouch_cli.pipeline import open_stream

    last = max(picks)
    out = []
    stream = open_stream(path, weights=weights, device="cpu")
    try:
        for i, result in enumerate(stream):
            if i in picks and result.faces:
                out.append((f"{path.stem}#{i}", result))
            if i >= last:
                break
    finally:
        stream.source.close()
    return out


def _tiles(result, tile: int) -> tuple[list[np.ndarray], dict]:
    import cv2

    from vretouch_cli.face.paste import face_region_mask, warp_mask_to_frame
    from vretouch_cli.face.regions import feature_mask

    face = max(result.faces, key=lambda f: float(np.abs(np.linalg.det(f.affine[:, :2]))) ** -1)
    size = face.mask_crop.shape[0]
    before_f, after_f = result.frame.image, result.retouched
    diff = np.abs(after_f.astype(np.int32) - before_f.astype(np.int32)).max(axis=2)
    region = warp_mask_to_frame(face_region_mask(size), face.affine, diff.shape, region=False) > 0.5
    feats = warp_mask_to_frame(feature_mask(size), face.affine, diff.shape, region=False) > 0.5
    stats = {
        "face_pixels": int(region.sum()),
        "changed_gt5_face_percent": 100.0 * float((diff[region] > 5).mean()) if region.any() else float("nan"),
        "changed_gt5_features_percent": 100.0 * float((diff[feats] > 5).mean()) if feats.any() else float("nan"),
        "max_change": int(diff.max()),
    }
    m = face.affine.copy() * (tile / size)
    before = cv2.warpAffine(before_f, m, (tile, tile), flags=cv2.INTER_AREA)
    after = cv2.warpAffine(after_f, m, (tile, tile), flags=cv2.INTER_AREA)
    change = np.clip(np.abs(after.astype(np.int16) - before.astype(np.int16)) * 16, 0, 255).astype(np.uint8)
    return [before, after, change], stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "retouch_sheet.png")
    parser.add_argument("--photos", type=int, default=4, help="held-out studio photos to include")
    parser.add_argument("--tile", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from PIL import Image, ImageDraw

    from vretouch_cli.train.data import split_by_identity
    from vretouch_cli.train.prepare import identity_of, list_images

    picks: list[tuple[str, object]] = []
    for name, idx in VIDEOS:
        path = SHARED / "videos" / name
        if path.is_file():
            picks += _frames(path, idx, args.weights)
    photos = list_images(SHARED / "faces")
    _, held = split_by_identity([identity_of(f"{p.parent.name}__{p.name}") for p in photos], 0.2)
    chosen = [p for p in photos if identity_of(f"{p.parent.name}__{p.name}") in held][:: 7][: args.photos]
    for p in chosen:
        picks += [(f"{p.parent.name}/{p.name}", r) for _, r in _frames(p, (0,), args.weights)]

    rows, report = [], {}
    for label, result in picks:
        tiles, stats = _tiles(result, args.tile)
        report[label] = stats
        print(label, json.dumps(stats), flush=True)
        row = np.concatenate(tiles, axis=1)
        img = Image.fromarray(row)
        ImageDraw.Draw(img).text((4, 4), f"{label}  >5 lv: {stats['changed_gt5_face_percent']:.2f}% of face", fill=(255, 255, 0))
        rows.append(np.asarray(img))
    # Two entries per row: before | after | change ×16, twice.
    if len(rows) % 2:
        rows.append(np.zeros_like(rows[0]))
    grid = np.concatenate([np.concatenate(rows[i : i + 2], axis=1) for i in range(0, len(rows), 2)], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(args.out, optimize=True)
    report["_sheet"] = {"path": str(args.out), "bytes": args.out.stat().st_size}
    print(json.dumps(report["_sheet"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
