"""Training losses (MODEL.md §3): L1 + VGG perceptual, hinge GAN, imperfection flow, imperfection map.

The VGG backbone for the perceptual term is found like model weights are: an explicit path or
hub reference, then ``$VRETOUCH_VGG_WEIGHTS``, then the Hugging Face hub *cache* (never an
implicit download). Without weights the term is skipped with a warning that says how to get them.
Accepted layouts: the project's compact ``features.{0..12}`` (VGG-16, conv layers in forward
order, as in ``vgg16_lpips.safetensors``) and torchvision / timm ``features.{i}`` with the
sequential indices of VGG-16 or VGG-19 (13 or 16 conv layers).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import WeightsError
from ..model.layers import warp

ENV_VGG = "VRETOUCH_VGG_WEIGHTS"
HUB_VGG = "timm/vgg16.tv_in1k:model.safetensors"  # ImageNet VGG-16, torchvision layout (≈ 530 MB)

VGG_HOW_TO = (
    f"pass --vgg-weights PATH (a VGG-16/19 .safetensors, torchvision layout), set {ENV_VGG}=PATH, "
    f"or fetch {HUB_VGG.split(':')[0]} into the Hugging Face cache (`hf download {HUB_VGG.replace(':', ' ')}`)"
)

# Conv layers per block and the tap names after the last ReLU of each block. A file may also hold
# only the first blocks of a VGG-16 (2, 4, 7 or 10 convs; e.g. slimmed to the taps in use).
_BLOCKS = {13: (2, 2, 3, 3, 3), 16: (2, 2, 4, 4, 4), 10: (2, 2, 3, 3), 7: (2, 2, 3), 4: (2, 2), 2: (2,)}
_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")  # names kept for VGG-19 too (block ends)


def resolve_vgg_weights(spec: str | os.PathLike | None = None) -> Path | None:
    """A local VGG safetensors path, or None when none is available (the caller warns).

    ``spec`` may be a file, ``hf:owner/name[:file]`` / ``owner/name:file`` (downloaded when not
    cached), ``none``/``off`` to disable, or None for ``$VRETOUCH_VGG_WEIGHTS`` / the hub cache.
    """
    if spec is not None and str(spec).strip().lower() in ("none", "off", "0", ""):
        return None
    for candidate, source in ((spec, "--vgg-weights"), (os.environ.get(ENV_VGG) or None, ENV_VGG)):
        if candidate is None:
            continue
        text = str(candidate)
        path = Path(text).expanduser()
        if path.is_file():
            return path
        if text.startswith("hf:") or (":" in text and "/" in text.split(":", 1)[0] and not path.exists()):
            from ..weights import hub_download

            repo, _, filename = text.removeprefix("hf:").partition(":")
            return hub_download(repo, filename or "model.safetensors")
        raise WeightsError(f"VGG weights not found: {text} (from {source}); {VGG_HOW_TO}")
    try:  # the hub cache only: a 530 MB download must be asked for
        from huggingface_hub import hf_hub_download

        repo, _, filename = HUB_VGG.partition(":")
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:
        return None


def _conv_tensors(state: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    idx = sorted({int(m.group(1)) for k in state if (m := re.fullmatch(r"features\.(\d+)\.weight", k)) and state[k].dim() == 4})
    convs = [(state[f"features.{i}.weight"], state[f"features.{i}.bias"]) for i in idx]
    if len(convs) not in _BLOCKS:
        raise WeightsError(f"expected the 13 (VGG-16) or 16 (VGG-19) conv layers of a VGG (or VGG-16's first blocks), found {len(convs)}")
    return convs


class VGGFeatures(nn.Module):
    """Frozen VGG conv trunk returning the ReLU taps asked for. Input [B, 3, H, W] in [-1, 1]."""

    def __init__(self, convs: list[tuple[torch.Tensor, torch.Tensor]], taps: tuple[str, ...]) -> None:
        super().__init__()
        unknown = [t for t in taps if t not in _TAPS]
        if unknown:
            raise WeightsError(f"unknown VGG layers {unknown}; choose from {', '.join(_TAPS)}")
        blocks = _BLOCKS[len(convs)]
        last = max(_TAPS.index(t) for t in taps)
        if last >= len(blocks):
            raise WeightsError(f"the VGG weights hold {len(blocks)} blocks, too few for the layer {_TAPS[last]}")
        layers: list[nn.Module] = []
        self._tap_at: dict[int, str] = {}
        k = 0
        for b, n in enumerate(blocks[: last + 1]):
            if b:
                layers.append(nn.MaxPool2d(2))
            for _ in range(n):
                w, bias = convs[k]
                conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
                conv.weight.data.copy_(w.float())
                conv.bias.data.copy_(bias.float())
                layers += [conv, nn.ReLU(inplace=False)]
                k += 1
            if _TAPS[b] in taps:
                self._tap_at[len(layers) - 1] = _TAPS[b]
        self.layers = nn.ModuleList(layers)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":  # always frozen, always eval
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: [B, 3, H, W] in [-1, 1] → the taps' features, shallow to deep."""
        h = ((x + 1.0) * 0.5 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i in self._tap_at:
                out.append(h)
        return out


class PerceptualLoss(nn.Module):
    """Mean L1 distance of VGG features, averaged over the taps (‖V(Y) − V(Ŷ)‖ of L_con)."""

    def __init__(self, features: VGGFeatures) -> None:
        super().__init__()
        self.features = features

    @classmethod
    def from_file(cls, path: str | Path, taps: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")) -> "PerceptualLoss":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:
            raise WeightsError(f"cannot read VGG weights {path}: {exc}") from exc
        return cls(VGGFeatures(_conv_tensors(state), tuple(taps)))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp = self.features(pred)
        with torch.no_grad():
            ft = self.features(target)
        return sum(F.l1_loss(a.float(), b.float()) for a, b in zip(fp, ft)) / len(fp)


def build_perceptual(spec: str | None, taps: tuple[str, ...]) -> tuple[PerceptualLoss | None, str]:
    """(loss or None, a one-line message saying which weights are used or how to get them)."""
    path = resolve_vgg_weights(spec)
    if path is None:
        if spec is not None and str(spec).strip().lower() in ("none", "off", "0"):
            return None, "perceptual loss off (--vgg-weights none)"
        msg = f"no VGG weights found: the perceptual loss is SKIPPED. To use it, {VGG_HOW_TO}"
        warnings.warn(msg, stacklevel=2)
        return None, msg
    return PerceptualLoss.from_file(path, taps), f"perceptual loss: VGG weights {path}"


def gt_imperfection_map(raw: torch.Tensor, target: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """M_gt (MODEL.md §3): ``clip(mean_c |raw − target| / scale, 0, 1)`` with images taken to [0, 1].

    raw, target: [..., 3, H, W] in [-1, 1] → [..., 1, H, W] in [0, 1]. Identical pairs give
    exact zeros (never NaN). ``scale`` defaults to the evaluator's ``GT_MAP_SCALE`` so the map
    trained on is the map measured.
    """
    if scale is None:
        from ..evaluate.metrics import GT_MAP_SCALE

        scale = GT_MAP_SCALE
    d = (raw.float() - target.float()).abs().mean(dim=-3, keepdim=True) * 0.5
    return (d / float(scale)).clamp_(0.0, 1.0)


def _as_list(logits) -> list[torch.Tensor]:
    return list(logits) if isinstance(logits, (list, tuple)) else [logits]


def d_hinge_loss(real_logits, fake_logits) -> torch.Tensor:
    """Discriminator hinge loss, averaged over the scales of a multi-scale D."""
    real, fake = _as_list(real_logits), _as_list(fake_logits)
    return sum(F.relu(1.0 - r.float()).mean() + F.relu(1.0 + f.float()).mean() for r, f in zip(real, fake)) / len(real)


def g_hinge_loss(fake_logits) -> torch.Tensor:
    """Generator hinge loss ``−E[D(fake)]``, averaged over the scales."""
    fake = _as_list(fake_logits)
    return sum(-f.float().mean() for f in fake) / len(fake)


# ----------------------------------------------------------------------------- balanced objective
#
# The imperfection maps are sparse (blemishes cover a few percent of a face at most), so a plain L1
# on the map or on the image is minimised by predicting "no imperfection" and copying the input
# (MODEL.md §5: the first CPU-trained model ended there). The balanced objective weights the rare
# positives up, punishes the clean ring around each blemish as hard negatives (a diffuse blob is not
# a spot map), and splits the reconstruction into a blemish-region term normalised by that region's
# area and a clean-region identity term.


def blemish_regions(m_gt: torch.Tensor, threshold: float = 0.02, grow: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """(positives, region): ``m_gt > threshold`` and that grown by ``grow`` pixels. [..., 1, H, W] → float {0, 1}."""
    pos = (m_gt > threshold).float()
    shape = pos.shape
    flat = pos.reshape(-1, 1, *shape[-2:])
    region = F.max_pool2d(flat, 2 * grow + 1, stride=1, padding=grow).reshape(shape)
    return pos, region


def balanced_map_loss(
    logits: torch.Tensor, m_gt: torch.Tensor, floor: float = 0.01, pos_weight_cap: float = 20.0, ring_weight: float = 4.0, ring: int = 3
) -> torch.Tensor:
    """Weighted BCE on the mask head's logits against the soft ground-truth map.

    logits, m_gt: [..., 1, H, W]. The map is ``(1 + 2ε)·σ(logit) − ε`` (clipped), so the target in
    sigmoid space is ``(M_gt + ε) / (1 + 2ε)``. Positive pixels (M_gt > 0.05) weigh
    ``min(negatives / positives, pos_weight_cap)`` (per batch), the clean ring of ``ring`` pixels
    around them ``ring_weight``, every other pixel 1; the loss is the weighted mean.
    """
    target = (m_gt.float() + floor) / (1.0 + 2.0 * floor)
    bce = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    pos = (m_gt > 0.05).float()
    n_pos = pos.sum()
    pw = ((pos.numel() - n_pos) / n_pos.clamp_min(1.0)).clamp(1.0, pos_weight_cap)
    shape = pos.shape
    grown = F.max_pool2d(pos.reshape(-1, 1, *shape[-2:]), 2 * ring + 1, stride=1, padding=ring).reshape(shape)
    ring_mask = grown * (1.0 - pos) * (m_gt <= 0.01).float()
    w = 1.0 + (pw - 1.0) * pos + (ring_weight - 1.0) * ring_mask
    return (w * bce).sum() / w.sum()


def soft_dice_loss(pred: torch.Tensor, m_gt: torch.Tensor, smooth: float = 1.0, present_only: bool = False) -> torch.Tensor:
    """1 − soft Dice per sample (over its last three dims), averaged. A sample without any
    blemish is scored by how little it predicts (1 − 1/(Σp + 1)), never NaN.

    ``present_only``: average over the samples whose ground truth has a positive pixel (> 0.05)
    only, zero (still part of the graph) when none has. For a class absent from most samples the
    empty ones would otherwise push its whole map towards zero; the BCE term already scores them.
    """
    p = pred.float().clamp(0, 1).flatten(-3)
    g = m_gt.float().flatten(-3)
    dice = (2.0 * (p * g).sum(-1) + smooth) / (p.sum(-1) + g.sum(-1) + smooth)
    if not present_only:
        return (1.0 - dice).mean()
    present = (g > 0.05).any(-1).float()
    return ((1.0 - dice) * present).sum() / present.sum().clamp_min(1.0)


def region_l1(pred: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean |pred − target| inside ``region`` (normalised by the region's area, per batch);
    pred/target [B, 3, H, W], region [B, 1, H, W] in {0, 1}. Zero when the region is empty."""
    err = (pred.float() - target.float()).abs().mean(dim=1, keepdim=True) * region
    return err.sum() / region.sum().clamp_min(1.0)


def region_mse(pred: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean squared error inside ``region`` (normalised by the region's area, per batch), the
    channels averaged; shapes as :func:`region_l1`. Zero when the region is empty."""
    err = (pred.float() - target.float()).square().mean(dim=1, keepdim=True) * region
    return err.sum() / region.sum().clamp_min(1.0)


def temporal_loss(
    pred: torch.Tensor, target: torch.Tensor, pred_prev: torch.Tensor, target_prev: torch.Tensor, flow: torch.Tensor,
    region: torch.Tensor | None = None, mask: torch.Tensor | None = None, mask_prev: torch.Tensor | None = None,
) -> torch.Tensor:
    """Flicker of the correction between two consecutive frames of a clip.

    The error of each output against its own clean frame, ``e = ŷ − y``, should move with the face:
    the loss is mean ``|e_t − W(e_{t−1})|`` with W the backward warp by ``flow`` [B, 2, H, W]
    (frame t's grid → frame t−1, exact for the synthetic clips). Resampling of the face itself
    cancels in ``e``, so only changes of the correction count. pred/target (frame t) and
    pred_prev/target_prev (frame t−1): [B, 3, H, W]. The mean runs over the pixels that warp from
    inside frame t−1 and lie in ``region`` [B, 1, H, W] (e.g. the grown blemish region) or where
    either composition map (``mask``, ``mask_prev`` warped; [B, 1, H, W]) exceeds 0.05: a
    correction that flickers on clean skin counts too. Without region and masks: every valid
    pixel. Zero when no pixel qualifies.
    """
    err_t = pred.float() - target.float()
    err_p = warp(pred_prev.float() - target_prev.float(), flow)
    b, _, h, w = flow.shape
    xs = torch.arange(w, device=flow.device, dtype=torch.float32).view(1, 1, w)
    ys = torch.arange(h, device=flow.device, dtype=torch.float32).view(1, h, 1)
    fx, fy = flow[:, 0].float() + xs, flow[:, 1].float() + ys
    valid = ((fx >= 0) & (fx <= w - 1) & (fy >= 0) & (fy <= h - 1)).float().unsqueeze(1)
    if region is None and mask is None and mask_prev is None:
        sel = valid
    else:
        on = torch.zeros_like(valid)
        if region is not None:
            on = torch.maximum(on, region.float())
        if mask is not None:
            on = torch.maximum(on, (mask.float() > 0.05).float())
        if mask_prev is not None:
            on = torch.maximum(on, (warp(mask_prev.float(), flow) > 0.05).float())
        sel = valid * on
    return region_l1(err_t, err_p, sel)
