"""VRetouchEr: the whole network (MODEL.md §1), split into per-frame parts and a window part.

Per-frame parts (computed once per frame; sliding inference caches them in a ring buffer):
E, N, the flow S from the previous frame, one FIR step, the mask head I, and the MMA keys and
values. Window part (once per output frame): MMA over the target and its references, G, and the
pixel-space composition.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .decoder import Decoder
from .encoder import Encoder
from .fir import FIR
from .flow import FlowEstimator
from .layers import NormConvFill, compose, resize_flow
from .localize import Localizer, MaskHead
from .mma import MMATransformer


@dataclass
class VROutput:
    """Output of :meth:`VRetouchEr.forward` (B batch, T frames, S crop size)."""

    out: Tensor  # [B, 3, S, S] in [-1, 1]: X_t + M_pix ⊙ (G − X_t)
    generated: Tensor  # [B, 3, S, S] in [-1, 1]: raw G output
    mask: Tensor  # [B, 1, S, S] in [0, 1]: the target's refined full-res map (used for composition)
    masks: Tensor  # [B, T, 1, S, S] in [0, 1]: refined full-res maps of every frame (for L_imp)
    masks_raw: Tensor | None  # [B, T, 1, S, S] in [0, 1]: full-res maps before FIR
    flows: Tensor  # [B, T-1, 2, S, S]: flows[:, k] on frame k+1's grid, frame_{k+1}(p) ≈ frame_k(p + flow(p)), pixels of S
    logits: Tensor | None = None  # [B, T, 1, S, S]: logits of ``masks`` (before the stretched sigmoid), for balanced losses


@dataclass
class FrameState:
    """Per-frame parts of a batch of frames (batch dim B)."""

    image: Tensor  # [B, 3, S, S] in [-1, 1]
    skips: list[Tensor]  # the six encoder features; skips[-1] is f [B, C, S/8, S/8]
    mask_raw: Tensor  # M [B, C_m, S/8, S/8] in [0, 1]
    mask: Tensor  # M̂ (after FIR) [B, C_m, S/8, S/8] in [0, 1]
    mask_pix: Tensor  # I(M̂) [B, 1, S, S] in [0, 1]
    kv: list[tuple[Tensor, Tensor]]  # per MMA block: K, V [B, S/8, S/8, C]
    flow: Tensor | None  # [B, 2, S/fs, S/fs] from the previous frame (zero at a track start), or None


class VRetouchEr(nn.Module):
    """The VRetouchEr generator. ``VRetouchEr(cfg)(clip, target_index) -> VROutput``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.localizer = Localizer(cfg)
        self.mask_head = MaskHead(cfg)
        self.flow = FlowEstimator(cfg)
        self.fir = FIR(cfg)
        self.mma = MMATransformer(cfg)
        self.decoder = Decoder(cfg)
        self.fill = NormConvFill(cfg.size) if cfg.fill == "normconv" else None

    @property
    def cfg(self) -> ModelConfig:
        return self.config

    # -- per-frame parts ----------------------------------------------------------------------
    def encode(self, image: Tensor) -> tuple[list[Tensor], Tensor]:
        """E and N. image [N, 3, S, S] in [-1, 1] → (six encoder features, M [N, C_m, S/8, S/8] in [0, 1])."""
        skips = self.encoder(image)
        return skips, self.localizer(image, skips[-1])

    def frame_step(self, image: Tensor, prev_image: Tensor | None = None, prev_mask: Tensor | None = None, has_prev: Tensor | None = None) -> FrameState:
        """One step of the per-frame stream for a batch of frames (e.g. one frame of several tracks).

        image [B, 3, S, S] in [-1, 1]; prev_image [B, 3, S, S] and prev_mask M̂ [B, C_m, S/8, S/8]
        of each sample's previous frame (None: every sample starts a track); has_prev [B] bool
        marks the samples that have a predecessor (None: all of them). Samples without one ignore
        prev_image/prev_mask (pass any placeholder).
        """
        skips, m_raw = self.encode(image)
        flow = None
        if prev_image is None:
            refined = self.fir(m_raw)
        else:
            flow = self.flow(prev_image, image)
            if has_prev is not None:
                flow = torch.where(has_prev.view(-1, 1, 1, 1), flow, torch.zeros_like(flow))
            refined = self.fir(m_raw, prev_mask, flow, has_prev)
        mask_pix = self.mask_head(refined, skips, image)
        kv = self.mma.frame_kv(skips[-1], refined)
        return FrameState(image, skips, m_raw, refined, mask_pix, kv, flow)

    # -- window part ----------------------------------------------------------------------------
    def synthesize(self, image: Tensor, skips: list[Tensor], mask: Tensor, mask_pix: Tensor, kv: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """MMA, G and composition for a batch of targets.

        image X_t [B, 3, S, S]; skips: the target's six encoder features; mask M̂_t [B, C_m, S/8, S/8];
        mask_pix [B, 1, S, S] in [0, 1]; kv per block (K, V) [B, T, S/8, S/8, C] of the window's
        frames (the target included) → (out [B, 3, S, S] fp32, generated [B, 3, S, S]), both in [-1, 1].
        """
        feat = self.mma(skips[-1], mask, kv)
        base = self.fill(image, mask_pix) if self.fill is not None else None
        generated = self.decoder(feat, skips, mask_pix, mask, base)
        return compose(image, generated, mask_pix), generated

    # -- whole clip -------------------------------------------------------------------------------
    def forward(self, clip: Tensor, target_index: int, return_raw: bool = True) -> VROutput:
        """clip [B, T, 3, S, S] in [-1, 1], frames in temporal order; target_index in [0, T).

        Runs E, N on all T frames, FIR as a stream from the clip's first frame (frame 0 has no
        predecessor, like a track start), I on every refined map, MMA with the target against all T
        frames, G, and the composition. ``return_raw=False`` skips ``masks_raw``.
        """
        if clip.dim() != 5 or clip.shape[2] != 3:
            raise ValueError(f"clip must be [B, T, 3, S, S], got {list(clip.shape)}")
        b, t = clip.shape[:2]
        if not -t <= target_index < t:
            raise ValueError(f"target_index {target_index} is outside the clip of {t} frames")
        target_index %= t
        size = clip.shape[-2:]
        frames = clip.reshape(b * t, *clip.shape[2:])
        skips, m_raw = self.encode(frames)
        m_raw_t = m_raw.view(b, t, *m_raw.shape[1:])
        flows = None
        if t > 1:
            prev = clip[:, :-1].reshape(b * (t - 1), *clip.shape[2:])
            cur = clip[:, 1:].reshape(b * (t - 1), *clip.shape[2:])
            flows = self.flow(prev, cur)
            flows = flows.view(b, t - 1, *flows.shape[1:])
        refined = [self.fir(m_raw_t[:, 0])]
        for j in range(1, t):
            refined.append(self.fir(m_raw_t[:, j], refined[-1], flows[:, j - 1]))
        refined_all = torch.stack(refined, dim=1).view(b * t, *m_raw.shape[1:])
        logits = self.mask_head.logits(refined_all, skips, frames)
        masks = self.mask_head.to_map(logits)
        masks_raw = self.mask_head(m_raw, skips, frames).view(b, t, 1, *size) if return_raw else None
        kv = [(k.view(b, t, *k.shape[1:]), v.view(b, t, *v.shape[1:])) for k, v in self.mma.frame_kv(skips[-1], refined_all)]

        def pick(x: Tensor) -> Tensor:
            return x.view(b, t, *x.shape[1:])[:, target_index]

        masks = masks.view(b, t, 1, *size)
        mask_pix = masks[:, target_index]
        out, generated = self.synthesize(clip[:, target_index], [pick(s) for s in skips], refined[target_index], mask_pix, kv)
        if flows is None:
            full_flows = clip.new_zeros(b, 0, 2, *size)
        else:
            full_flows = resize_flow(flows.reshape(b * (t - 1), *flows.shape[2:]), size).view(b, t - 1, 2, *size)
        return VROutput(out=out, generated=generated, mask=mask_pix, masks=masks, masks_raw=masks_raw, flows=full_flows, logits=logits.view(b, t, 1, *size))
