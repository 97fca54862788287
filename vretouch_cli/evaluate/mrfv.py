"""``vretouch eval --mrfv DIR``: run the pipeline on each clip's raw video and score it.

For every clip (layout in :mod:`.data`) the whole video pipeline (detect → track → align → model
→ paste) runs twice on ``raw``: with the model's window δ (``vretouch``) and with δ = 1
(``single_frame``); the raw input itself is the no-edit baseline. Every output is compared with
``retouched`` frame by frame (:mod:`.scoring`). The face region of a frame is the union of the
pipeline's feathered face-region masks (the ellipse the correction is pasted through) warped to
the frame; the predicted imperfection map of a method is the union of its faces' maps in frame
coordinates. All streams are read in lock step: memory does not grow with clip length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import InputError
from .data import find_mrfv_clips
from .report import EvalReport
from .scoring import ClipScore, ClipScorer

Progress = Callable[[str, int, int | None], None]


def face_region(faces, shape: tuple[int, ...]) -> np.ndarray | None:
    """Union (max) of the feathered face-region masks of ``faces`` in frame coordinates, or None."""
    if not faces:
        return None
    from ..face.paste import face_region_mask, warp_mask_to_frame

    region = np.zeros(shape[:2], np.float32)
    for f in faces:
        size = int(np.asarray(f.mask_crop).shape[0])
        # The whole face ellipse, eyes and lips included: damage there must count too.
        np.maximum(region, warp_mask_to_frame(face_region_mask(size), f.affine, shape[:2], region=False), out=region)
    return region


def imperfection_map(faces, shape: tuple[int, ...]) -> np.ndarray:
    """Union (max) of the faces' imperfection maps in frame coordinates (zeros without faces)."""
    out = np.zeros(shape[:2], np.float32)
    for f in faces:
        np.maximum(out, np.asarray(f.mask_frame, np.float32), out=out)
    return out


def score_clip(
    name: str,
    results: Iterable,
    references: Iterable[np.ndarray],
    single: Iterable | None = None,
    *,
    lpips: dict[str, object] | None = None,
    lpips_region: str = "face",
    progress: Progress | None = None,
    total: int | None = None,
) -> ClipScore:
    """Score one clip from its pipeline results (FrameResult-like: ``.frame.image``, ``.retouched``,
    ``.faces``), the reference frames, and optionally the δ = 1 results (same frame order)."""
    methods = ("raw", "single_frame", "vretouch") if single is not None else ("raw", "vretouch")
    scorer = ClipScorer(name, methods, lpips=lpips, lpips_region=lpips_region)
    it_res: Iterator = iter(results)
    it_ref: Iterator = iter(references)
    it_single: Iterator | None = iter(single) if single is not None else None
    face_frames = 0
    n = 0
    while True:
        res = next(it_res, None)
        ref = next(it_ref, None)
        one = next(it_single, None) if it_single is not None else None
        if res is None and ref is None:
            break
        if res is None or ref is None or (it_single is not None and one is None):
            side = "raw" if res is None or (it_single is not None and one is None) else "retouched"
            raise InputError(f"clip {name}: '{side}' ends after {n} frames, the other side has more (both need the same frame count)")
        raw = res.frame.image
        ref = np.asarray(ref)
        if ref.shape != raw.shape:
            raise InputError(f"clip {name}: frame {n}: raw is {raw.shape[1]}×{raw.shape[0]}, retouched {ref.shape[1]}×{ref.shape[0]}")
        if ref.dtype != raw.dtype:
            raise InputError(f"clip {name}: raw is {raw.dtype.itemsize * 8}-bit, retouched {ref.dtype.itemsize * 8}-bit; give both at the same bit depth")
        outputs = {"raw": raw, "vretouch": res.retouched}
        maps = {"raw": None, "vretouch": imperfection_map(res.faces, raw.shape)}
        if one is not None:
            outputs["single_frame"] = one.retouched
            maps["single_frame"] = imperfection_map(one.faces, raw.shape)
        region = face_region(res.faces, raw.shape)
        face_frames += bool(res.faces)
        scorer.push(raw, ref, outputs, maps, region)
        n += 1
        if progress is not None:
            progress(name, n, total)
    if n == 0:
        raise InputError(f"clip {name}: no frames")
    return scorer.finish({"face_frames": face_frames})


def evaluate_mrfv(
    root: str | Path,
    *,
    weights=None,
    device: str = "auto",
    window: int | None = None,
    model=None,
    lpips: dict[str, object] | None = None,
    lpips_region: str = "face",
    single_frame: bool = True,
    progress: Progress | None = None,
) -> EvalReport:
    """Evaluate every clip of an MRFV-layout folder (see :mod:`.data`) and return the report."""
    from ..pipeline import load_pipeline_model, open_stream
    from ..video import open_source

    clips = find_mrfv_clips(root)
    if model is None:
        model, dev = load_pipeline_model(weights, device)
        device = str(dev)
    delta = int(window) if window is not None else int(model.config.delta)
    scores: list[ClipScore] = []
    for clip in clips:
        stream = open_stream(clip.raw, model=model, device=device, window=window)
        single = open_stream(clip.raw, model=model, device=device, window=1) if single_frame else None
        ref_src = open_source(clip.retouched)
        try:
            info = stream.info
            refs = (f.image for f in ref_src)
            score = score_clip(
                clip.name, stream, refs, single, lpips=lpips, lpips_region=lpips_region,
                progress=progress, total=info.frame_count,
            )
            score.info.update({"width": info.width, "height": info.height, "fps": float(info.fps), "raw": str(clip.raw), "retouched": str(clip.retouched)})
            scores.append(score)
        finally:
            for s in (stream.source, single.source if single is not None else None, ref_src):
                if s is not None:
                    s.close()
    methods = ("raw", "single_frame", "vretouch") if single_frame else ("raw", "vretouch")
    report = EvalReport("mrfv", str(root), methods, scores)
    report.settings.update({"window": delta, "lpips_region": lpips_region})
    report.method_labels["vretouch"] = f"VRetouchEr (δ={delta})"
    return report
