"""Pipeline speed and memory (issue 2's benchmark).

1. Per-stage milliseconds per frame and peak memory for a 1280×720 clip with one real face
   (the demo clip's face moving over a 720p canvas), with the `tiny` preset on this CPU.
2. Bounded streaming: peak memory of a 10-minute against a 10-second synthetic clip (same
   content, 320×240 at 1 fps so that the long run stays a few minutes); the ratio must stay
   within 1.2×.

Each measurement runs in its own process so that peak RSS is that run's alone.

    python benchmarks/pipeline.py              # both parts
    python benchmarks/pipeline.py --part speed # only the 720p part
    python benchmarks/pipeline.py --weights W  # another model (default: seeded tiny)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def demo_faces() -> list[np.ndarray]:
    from vretouch_cli.video import open_source

    with open_source(REPO / "examples" / "demo_talking.mp4") as src:
        return [f.image for f in src]


def make_clip(path: Path, width: int, height: int, fps: int, frames: int, face_size: int) -> None:
    """A clip of ``frames`` frames: the demo face (resized) drifting slowly over a grey canvas."""
    import cv2

    from vretouch_cli.video.testclips import write_test_video

    faces = [cv2.resize(f, (face_size, face_size), interpolation=cv2.INTER_AREA) for f in demo_faces()]

    def frame(i: int) -> np.ndarray:
        canvas = np.full((height, width, 3), 118, np.uint8)
        face = faces[i % len(faces)]
        x = int((width - face_size) / 2 + (width - face_size) / 4 * np.sin(i / 50.0))
        y = (height - face_size) // 2
        canvas[y : y + face_size, x : x + face_size] = face
        return canvas

    write_test_video(path, [frame(i) for i in range(frames)], fps=fps)


def run_child(clip: Path, out: Path, weights: Path, device: str) -> dict:
    """Run the pipeline in a child process; return its report and peak RSS."""
    code = (
        "import json, resource, sys; from vretouch_cli.pipeline import retouch_video;"
        f"r = retouch_video({str(clip)!r}, {str(out)!r}, weights={str(weights)!r}, device={device!r}, overwrite=True);"
        "print(json.dumps({'frames': r.frames, 'face_frames': r.face_frames, 'seconds': r.seconds,"
        " 'ms_per_frame': r.ms_per_frame(), 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tiny_weights(folder: Path) -> Path:
    import torch

    from vretouch_cli.checkpoint import save_model
    from vretouch_cli.model.config import ModelConfig
    from vretouch_cli.model.network import VRetouchEr

    torch.manual_seed(0)
    path = folder / "tiny.safetensors"
    save_model(path, VRetouchEr(ModelConfig.preset("tiny")))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["speed", "memory", "all"], default="all")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=90, help="frames of the 720p clip")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = args.weights or tiny_weights(tmp)
        if args.part in ("speed", "all"):
            clip = tmp / "face720.mp4"
            make_clip(clip, 1280, 720, 30, args.frames, 360)
            r = run_child(clip, tmp / "out720.mp4", weights, args.device)
            ms = r["ms_per_frame"]
            r["non_model_ms_per_frame"] = sum(v for k, v in ms.items() if k != "model")
            results["speed_720p"] = r
            print("720p, one face, %d frames:" % r["frames"])
            for stage, value in ms.items():
                print(f"  {stage:7s} {value:8.1f} ms/frame")
            print(f"  all but model {r['non_model_ms_per_frame']:.1f} ms/frame; peak RSS {r['peak_rss_mb']:.0f} MB")
        if args.part in ("memory", "all"):
            short, long_ = tmp / "short.mp4", tmp / "long.mp4"
            make_clip(short, 320, 240, 1, 10, 160)  # 10 s
            make_clip(long_, 320, 240, 1, 600, 160)  # 10 min
            rs = run_child(short, tmp / "o_short.mp4", weights, args.device)
            rl = run_child(long_, tmp / "o_long.mp4", weights, args.device)
            ratio = rl["peak_rss_mb"] / rs["peak_rss_mb"]
            results["memory"] = {"10s": rs, "10min": rl, "ratio": ratio}
            print(f"peak RSS: 10 s clip {rs['peak_rss_mb']:.0f} MB, 10 min clip {rl['peak_rss_mb']:.0f} MB, ratio {ratio:.3f}")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
