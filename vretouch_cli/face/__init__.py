"""The face stage: detect → track (+ smoothing, shot cuts) → align → paste the correction back.

Coordinates are full-resolution float pixel coordinates (pixel centres at integers); landmarks
are [5, 2] float32 in the order left eye, right eye (as seen in the image), nose tip, left mouth
corner, right mouth corner; ``M`` is a 2×3 float64 frame → crop similarity.
"""

from .align import FFHQ_TEMPLATE, estimate_alignment, invert_affine, template, warp_to_crop
from .detect import Detection, FaceDetector
from .paste import face_region_mask, paste_correction, warp_mask_to_frame
from .track import (
    TRACKING_DETECTION_THRESHOLD,
    FaceTracker,
    FrameFaces,
    TrackedFace,
    is_shot_cut,
    thumbnail,
)

__all__ = [
    "FFHQ_TEMPLATE",
    "TRACKING_DETECTION_THRESHOLD",
    "Detection",
    "FaceDetector",
    "FaceTracker",
    "FrameFaces",
    "TrackedFace",
    "estimate_alignment",
    "face_region_mask",
    "invert_affine",
    "is_shot_cut",
    "paste_correction",
    "template",
    "thumbnail",
    "warp_mask_to_frame",
    "warp_to_crop",
]
