"""Make examples/demo_talking.mp4 from ../shared/data/videos/talking_512_noaudio.mp4.

The source clip comes from the KwaiVGI/LivePortrait repository (MIT license). We keep the
first 48 frames and re-encode them with libx264 (CRF 20); see examples/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av

REPO = Path(__file__).resolve().parent.parent
SRC = REPO.parent / "shared" / "data" / "videos" / "talking_512_noaudio.mp4"
DST = REPO / "examples" / "demo_talking.mp4"
FRAMES = 48


def main() -> int:
    if not SRC.is_file():
        print(f"missing {SRC}", file=sys.stderr)
        return 1
    with av.open(str(SRC)) as src, av.open(str(DST), "w") as dst:
        vin = src.streams.video[0]
        out = dst.add_stream("libx264", rate=vin.average_rate)
        out.width, out.height, out.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        out.options = {"crf": "20", "preset": "slow"}
        for i, frame in enumerate(src.decode(vin)):
            if i >= FRAMES:
                break
            for packet in out.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in out.encode():
            dst.mux(packet)
    print(f"wrote {DST} ({DST.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
