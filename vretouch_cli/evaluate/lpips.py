"""LPIPS v0.1 (Zhang et al., CVPR 2018) with AlexNet or VGG-16 features, in plain PyTorch.

Weights are one safetensors file per backbone (layout in ``../shared/weights/README.md``):
``features.i`` = the i-th conv of the backbone in forward order (OIHW), ``lin0``–``lin4`` = the
LPIPS 1×1 heads. They are found, in order, at: an explicit path; the environment variable
(``VRETOUCH_LPIPS_ALEX`` / ``VRETOUCH_LPIPS_VGG``); the repository's ``weights/`` folder; the
project's weights resolver (``vretouch_cli.weights``, when it knows them). Nothing is downloaded
here. When no file is found, :func:`load_lpips` raises :class:`WeightsError` and
:func:`try_load_lpips` returns ``(None, reason)`` so a report can say "unavailable".

The pinned SHA-256 of the known files is checked on load; a file with another hash is accepted
only when every tensor has the expected shape (a user's own conversion), and the hash is recorded.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import WeightsError

BACKBONES = ("alex", "vgg")

ENV_VARS = {"alex": "VRETOUCH_LPIPS_ALEX", "vgg": "VRETOUCH_LPIPS_VGG"}
FILENAMES = {"alex": "lpips_alex.safetensors", "vgg": "vgg16_lpips.safetensors"}
SHA256 = {
    "alex": "d6745e6639125c8a53645430335be99b4fa58cd85e2dfc96d596d13b5905edb6",
    "vgg": "9f8483c26ce853d758fbff3a0629f6d8a9d505f284ecb31f3cc47a9649e40cb9",
}

# (out_channels, in_channels, kernel, stride, padding) per conv, and after which convs the
# features are tapped / max-pooled (3×3 stride 2 for AlexNet, 2×2 stride 2 for VGG).
_ALEX_CONVS = [(64, 3, 11, 4, 2), (192, 64, 5, 1, 2), (384, 192, 3, 1, 1), (256, 384, 3, 1, 1), (256, 256, 3, 1, 1)]
_ALEX_POOL_BEFORE = {1, 2}  # max-pool ahead of conv 1 and conv 2
_ALEX_TAPS = [0, 1, 2, 3, 4]
_VGG_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
_VGG_POOL_BEFORE = {2, 4, 7, 10}
_VGG_TAPS = [1, 3, 6, 9, 12]  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3

_SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
_SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)


def _expected_shapes(backbone: str) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    if backbone == "alex":
        convs = [(o, i, k) for o, i, k, _, _ in _ALEX_CONVS]
        taps = _ALEX_TAPS
    else:
        chans = [3] + _VGG_CHANNELS
        convs = [(chans[j + 1], chans[j], 3) for j in range(len(_VGG_CHANNELS))]
        taps = _VGG_TAPS
    for j, (o, i, k) in enumerate(convs):
        shapes[f"features.{j}.weight"] = (o, i, k, k)
        shapes[f"features.{j}.bias"] = (o,)
    for n, j in enumerate(taps):
        shapes[f"lin{n}.weight"] = (1, convs[j][0], 1, 1)
    return shapes


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_weights(backbone: str, path: str | os.PathLike | None = None) -> Path | None:
    """Where the LPIPS weights of ``backbone`` are, or None (see the module docstring for the order)."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown LPIPS backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")
    if path:
        p = Path(path).expanduser()
        if p.is_dir():
            p = p / FILENAMES[backbone]
        if not p.is_file():
            raise WeightsError(f"LPIPS-{backbone} weights not found at {p}")
        return p
    env = os.environ.get(ENV_VARS[backbone], "").strip()
    if env:
        p = Path(env).expanduser()
        if p.is_dir():
            p = p / FILENAMES[backbone]
        if not p.is_file():
            raise WeightsError(f"{ENV_VARS[backbone]}={env}: no such file")
        return p
    local = _local_dir() / FILENAMES[backbone]
    if local.is_file():
        return local
    return _from_resolver(backbone)


def _local_dir() -> Path:
    """The repository's ``weights/`` folder (beside the package folder)."""
    return Path(__file__).resolve().parents[2] / "weights"


def _from_resolver(backbone: str) -> Path | None:
    # The project's weights resolver (hub cache / download) may know these files; its absence or
    # failure only means "not available", never an error of the evaluation.
    try:
        from .. import weights as resolver  # type: ignore[attr-defined]
    except Exception:
        return None
    fn = getattr(resolver, "resolve_aux", None) or getattr(resolver, "resolve_file", None)
    if fn is None:
        return None
    try:
        p = fn(FILENAMES[backbone])
    except Exception:
        return None
    return Path(p) if p and Path(p).is_file() else None


class LPIPS(torch.nn.Module):
    """LPIPS distance. ``forward(x, y)``: x, y B×3×H×W float in [-1, 1] (RGB) → B distances (≥ 0).

    Inputs are scaled with the standard LPIPS shift/scale, features are tapped after the ReLUs,
    unit-normalised over channels, squared differences weighted by the linear heads, averaged
    over space and summed over the five taps.
    """

    def __init__(self, backbone: str, state: dict[str, torch.Tensor]):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown LPIPS backbone {backbone!r}")
        self.backbone = backbone
        expected = _expected_shapes(backbone)
        missing = sorted(set(expected) - set(state))
        wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
        if missing or wrong:
            raise WeightsError(
                f"LPIPS-{backbone} weights have the wrong layout (missing {missing[:3]}, wrong shape {wrong[:3]})"
            )
        n_convs = len(_ALEX_CONVS) if backbone == "alex" else len(_VGG_CHANNELS)
        self.weight = torch.nn.ParameterList(
            [torch.nn.Parameter(state[f"features.{j}.weight"].float(), requires_grad=False) for j in range(n_convs)]
        )
        self.bias = torch.nn.ParameterList(
            [torch.nn.Parameter(state[f"features.{j}.bias"].float(), requires_grad=False) for j in range(n_convs)]
        )
        self.lin = torch.nn.ParameterList(
            [torch.nn.Parameter(state[f"lin{n}.weight"].float(), requires_grad=False) for n in range(5)]
        )
        self.register_buffer("shift", _SHIFT.clone(), persistent=False)
        self.register_buffer("scale", _SCALE.clone(), persistent=False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five tapped feature maps of x (B×3×H×W in [-1, 1])."""
        h = (x - self.shift) / self.scale
        taps: list[torch.Tensor] = []
        if self.backbone == "alex":
            for j, (_, _, _, stride, pad) in enumerate(_ALEX_CONVS):
                if j in _ALEX_POOL_BEFORE:
                    h = F.max_pool2d(h, 3, 2)
                h = F.relu(F.conv2d(h, self.weight[j], self.bias[j], stride=stride, padding=pad))
                taps.append(h)
        else:
            for j in range(len(_VGG_CHANNELS)):
                if j in _VGG_POOL_BEFORE:
                    h = F.max_pool2d(h, 2, 2)
                h = F.relu(F.conv2d(h, self.weight[j], self.bias[j], padding=1))
                if j in _VGG_TAPS:
                    taps.append(h)
        return taps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: B×3×H×W float in [-1, 1] → B LPIPS distances."""
        fx, fy = self.features(x), self.features(y)
        total = x.new_zeros(x.shape[0])
        for a, b, lin in zip(fx, fy, self.lin):
            a = a / (a.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + F.conv2d((a - b) ** 2, lin).mean(dim=(1, 2, 3))
        return total


@dataclass
class LoadedLPIPS:
    """A ready LPIPS model, where its weights came from, and their SHA-256."""

    model: LPIPS
    path: Path
    sha256: str
    pinned: bool  # True when the file is the known, pinned one

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
        """LPIPS of two H×W×3 RGB images (uint8/uint16/float in [0, 1]).

        With ``mask`` (H×W in [0, 1]) both images are cropped to the mask's bounding box
        (pixels where mask > 0.5), so the distance covers the face region; an empty mask gives NaN.
        """
        if a.shape != b.shape:
            raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
        if mask is not None:
            ys, xs = np.nonzero(np.asarray(mask) > 0.5)
            if ys.size == 0:
                return float("nan")
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            if y1 - y0 < 32 or x1 - x0 < 32:  # too small for the backbones' receptive fields
                return float("nan")
            a, b = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
        device = next(self.model.parameters()).device
        return float(self.model(image_to_tensor(a).to(device), image_to_tensor(b).to(device))[0])


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 RGB uint8/uint16/float[0,1] → 1×3×H×W float32 in [-1, 1]."""
    from .metrics import to_unit

    t = torch.from_numpy(np.ascontiguousarray(to_unit(image)))
    return t.permute(2, 0, 1).unsqueeze(0) * 2.0 - 1.0


def load_lpips(backbone: str, path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> LoadedLPIPS:
    """Load LPIPS for ``backbone`` ('alex' | 'vgg'); :class:`WeightsError` when missing or corrupt."""
    p = find_weights(backbone, path)
    if p is None:
        raise WeightsError(
            f"LPIPS-{backbone} weights not found: pass a path or set {ENV_VARS[backbone]} to {FILENAMES[backbone]}"
        )
    from safetensors.torch import load_file

    digest = _sha256(p)
    try:
        state = load_file(str(p))
    except Exception as exc:  # safetensors raises its own error types on corrupt files
        raise WeightsError(f"cannot read LPIPS-{backbone} weights {p}: {exc}") from exc
    model = LPIPS(backbone, state).eval().to(device)
    return LoadedLPIPS(model=model, path=p, sha256=digest, pinned=digest == SHA256[backbone])


def try_load_lpips(
    backbone: str, path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> tuple[LoadedLPIPS | None, str]:
    """Like :func:`load_lpips`, but returns ``(None, reason)`` instead of raising when unavailable."""
    try:
        return load_lpips(backbone, path, device), ""
    except WeightsError as exc:
        return None, str(exc)
