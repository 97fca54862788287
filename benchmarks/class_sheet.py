"""What a weights file with class heads removes and keeps on real faces (issue 11's contact sheet).

Real frames (a shared video, held-out studio photos) go through ``vretouch``'s own stream (detect,
track, align, model, paste-back) twice: with the default selection (acne, redness, marks removed;
moles and freckles kept) and with ``--remove all``. Each row shows, cropped to the face: the input,
the class overlay of ``vretouch masks`` (each pixel's strongest class in its colour, with the
legend), the default output, the ``all`` output, and both changes ×8. The JSON gives, per row, the
share of face pixels changed by more than 5 levels under each selection.

    python benchmarks/class_sheet.py --weights W --out docs/class_sheet.png [--json runs/class_sheet.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from _report import emit  # noqa: E402  (benchmarks/_report.py, beside this script)
SHARED = REPO.parent / "shared" / "data"

VIDEOS = (("woman_720p_headturn.mp4", 10), ("talking_512_noaudio.mp4", 20))


def _pick(path: Path, index: int, model, remove: str):
    """The FrameResult of frame ``index`` of ``path`` (None when it has no face)."""
    from vretouch_cli.pipeline import open_stream

    stream = open_stream(path, model=model, device="cpu", remove=remove)
    try:
        for i, result in enumerate(stream):
            if i == index:
                return result if result.faces else None
    finally:
        stream.source.close()
    return None


def _row(default, everything, classes: tuple[str, ...], tile: int) -> tuple[list[np.ndarray], dict]:
    import cv2

    from vretouch_cli.classes import TEMPORARY
    from vretouch_cli.face.paste import face_region_mask, warp_mask_to_frame
    from vretouch_cli.masks import class_overlay_image

    def largest(result):
        return max(result.faces, key=lambda f: float(np.abs(np.linalg.det(f.affine[:, :2]))) ** -1)

    face = largest(default)
    size = face.mask_crop.shape[0]
    frame = default.frame.image
    region = warp_mask_to_frame(face_region_mask(size), face.affine, frame.shape[:2], region=False) > 0.5
    stats = {}
    for name, result in (("default", default), ("all", everything)):
        diff = np.abs(result.retouched.astype(np.int32) - frame.astype(np.int32)).max(axis=2)
        stats[f"changed_gt5_face_percent_{name}"] = 100.0 * float((diff[region] > 5).mean()) if region.any() else float("nan")
    maps = face.class_frames()
    m = face.affine.copy() * (tile / size)

    def crop(img: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(img, m, (tile, tile), flags=cv2.INTER_AREA)

    before, out_d, out_a = (crop(x) for x in (frame, default.retouched, everything.retouched))
    over = before
    if maps is not None:  # the overlay drawn on the face tile, so its legend is the tile's
        tile_maps = np.stack([crop(np.ascontiguousarray(x)) for x in maps])
        over = class_overlay_image(before, tile_maps, classes, kept=[c for c in classes if c not in TEMPORARY])

    def change(x: np.ndarray) -> np.ndarray:
        return np.clip(np.abs(x.astype(np.int16) - before.astype(np.int16)) * 8, 0, 255).astype(np.uint8)

    return [before, over, out_d, out_a, change(out_d), change(out_a)], stats


def main() -> None:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="weights with class heads")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "class_sheet.png")
    parser.add_argument("--photos", type=int, default=2, help="held-out studio photos to include")
    parser.add_argument("--tile", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from vretouch_cli.checkpoint import load_model
    from vretouch_cli.train.data import split_by_identity
    from vretouch_cli.train.prepare import identity_of, list_images
    from vretouch_cli.weights import resolve_weights

    model = load_model(resolve_weights(args.weights), device="cpu")
    classes = tuple(model.config.classes)
    if not classes:
        sys.exit(f"{args.weights}: these weights have no class heads; the class sheet needs weights trained with classes")
    picks = [(SHARED / "videos" / name, index) for name, index in VIDEOS]
    if args.photos:  # held-out studio photos (people training never saw), as benchmarks/real_sheet.py picks them
        photos = list_images(SHARED / "faces")
        _, held = split_by_identity([identity_of(f"{p.parent.name}__{p.name}") for p in photos], 0.2)
        picks += [(p, 0) for p in [p for p in photos if identity_of(f"{p.parent.name}__{p.name}") in held][::7][: args.photos]]
    rows, report = [], {"weights": str(args.weights), "classes": list(classes), "rows": []}
    for src, index in picks:
        if not src.is_file():
            print(f"skipped (missing): {src}", flush=True)
            continue
        default = _pick(src, index, model, "acne,redness,marks")
        everything = _pick(src, index, model, "all")
        if default is None or everything is None:
            print(f"skipped (no face): {src.name}#{index}", flush=True)
            continue
        tiles, stats = _row(default, everything, classes, args.tile)
        rows.append(np.concatenate(tiles, axis=1))
        report["rows"].append({"input": f"{src.name}#{index}", **stats})
        print(json.dumps(report["rows"][-1]), flush=True)
    if not rows:
        sys.exit("no input with a face: nothing to show")
    head = np.full((24, rows[0].shape[1], 3), 255, np.uint8)
    for j, label in enumerate(("input", "classes (masks)", "default: acne,redness,marks", "--remove all", "default change x8", "all change x8")):
        cv2.putText(head, label, (j * args.tile + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.concatenate([head, *rows], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(sheet).quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(args.out, optimize=True)
    report["sheet"] = str(args.out)
    report["sheet_bytes"] = args.out.stat().st_size
    emit(report, args.json)


if __name__ == "__main__":
    main()
