"""Face-stage speed: detection (640×360 and 1280×720), tracking, alignment crop and paste-back.

    python benchmarks/faces.py [--repeat 20] [--size 512]

Uses a frame of ../shared/data/videos/woman_talking_360p_pexels.mp4 when present (upscaled for
the 720p and 4K cases), otherwise a synthetic frame (detection then finds nothing, which times
the network but not the decoding of faces).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from vretouch_cli.face import (
    FaceDetector,
    FaceTracker,
    estimate_alignment,
    paste_correction,
    warp_to_crop,
)

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "woman_talking_360p_pexels.mp4"


def _frame() -> np.ndarray:
    if CLIP.is_file():
        import av

        with av.open(str(CLIP)) as c:
            return next(c.decode(video=0)).to_ndarray(format="rgb24")
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 256, (360, 640, 3), dtype=np.uint8), (0, 0), 3)


def _ms(fn, repeat: int) -> str:
    """Wall and CPU (all threads) milliseconds per call; CPU time is less sensitive to a busy box."""
    fn()  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        fn()
    wall = (time.perf_counter() - t0) / repeat * 1000
    cpu = (time.process_time() - c0) / repeat * 1000
    return f"{wall:7.2f} ms wall, {cpu:7.2f} ms CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--size", type=int, default=512, help="crop size S")
    args = ap.parse_args()
    base = _frame()
    frames = {
        "640x360": base,
        "1280x720": cv2.resize(base, (1280, 720), interpolation=cv2.INTER_CUBIC),
        "3840x2160": cv2.resize(base, (3840, 2160), interpolation=cv2.INTER_CUBIC),
    }
    det = FaceDetector()
    for name, img in frames.items():
        ms = _ms(lambda img=img: det.detect(img), args.repeat)
        print(f"detect {name:>9}: {ms}  ({len(det.detect(img))} face(s))")
    full = FaceDetector(max_side=4096)
    ms = _ms(lambda: full.detect(frames["1280x720"]), max(3, args.repeat // 4))
    print(f"detect  1280x720 at full size (max_side=4096): {ms}")

    faces = det.detect(frames["1280x720"])
    if faces:
        lm = faces[0].landmarks
    else:
        lm = np.array([[560, 300], [720, 300], [640, 380], [580, 450], [700, 450]], np.float32)
    tr = FaceTracker()
    dets = det.detect(frames["1280x720"])
    counter = iter(range(10**9))
    print(f"tracker push (1 face): {_ms(lambda: tr.push(next(counter), dets), 200)}")

    S = args.size
    rng = np.random.default_rng(0)
    corr = (rng.standard_normal((S, S, 3)) * 0.05).astype(np.float32)
    mask = np.ones((S, S), np.float32)
    for name in ("1280x720", "3840x2160"):
        img = frames[name]
        k = img.shape[1] / 1280
        M = estimate_alignment(lm * k, S)
        print(f"align+crop {name:>9} S={S}: {_ms(lambda: warp_to_crop(img, M, S), args.repeat)}")
        work = img.copy()
        print(f"paste      {name:>9} S={S}: {_ms(lambda: paste_correction(work, corr, mask, M), args.repeat)}")


if __name__ == "__main__":
    main()
