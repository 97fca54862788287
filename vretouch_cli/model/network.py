"""VRetouchEr: the whole network (MODEL.md §1), split into per-frame parts and a window part.

Per-frame parts (computed once per frame; sliding inference caches them in a ring buffer):
E, N, the flow S from the previous frame, one FIR step, the mask head I, and the MMA keys and
values. Window part (once per output frame): MMA over the target and its references, G, and the
pixel-space composition.

Class heads (``cfg.classes`` non-empty, issue 11). I predicts one map m_c per class c, and every
entry point takes ``select`` [B, K] in [0, 1], one weight per class in ``cfg.classes`` order
(the user's strength for a selected class, 0 for a kept one; default: the temporary classes
acne, redness, marks at 1, the others 0). The map that gates G's skips and drives the
composition is the combined map of the selected classes,

    M_pix = max_c(select_c · m_c)          (· (1 − K_pix) with ``cfg.keep_veto``),

so select = 0 leaves the input bit for bit, a class at weight 1 is composed exactly as its own
map says, and overlapping classes do not add up beyond the strongest one; with the veto, a
pixel the kept classes' map claims is not replaced even where a removed class's map fires too.
The map of the kept classes, K_pix = max_c((1 − select_c) · m_c), and the selection itself condition G (see
:class:`~vretouch_cli.model.decoder.Decoder`), so the network can learn to keep unselected
features intact where they touch what is removed; the classical fill does not read from them.
Without class heads nothing of this runs: the cost and the tensors are those of the merged model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..classes import default_vector
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
    mask: Tensor  # [B, 1, S, S] in [0, 1]: the target's refined full-res map (used for composition; with class heads, of the selected classes)
    masks: Tensor  # [B, T, 1, S, S] in [0, 1]: refined full-res maps of every frame (for L_imp)
    masks_raw: Tensor | None  # [B, T, 1, S, S] in [0, 1]: full-res maps before FIR
    flows: Tensor  # [B, T-1, 2, S, S]: flows[:, k] on frame k+1's grid, frame_{k+1}(p) ≈ frame_k(p + flow(p)), pixels of S
    # [B, T, 1, S, S]: logits of ``masks`` (before the stretched sigmoid), for balanced losses. None
    # with class heads: a combined map has no logits of its own (use ``class_logits``).
    logits: Tensor | None = None
    class_maps: Tensor | None = None  # [B, T, K, S, S] in [0, 1]: refined per-class maps (cfg.classes order); None without class heads
    class_logits: Tensor | None = None  # [B, T, K, S, S]: their logits; None without class heads


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
    class_maps: Tensor | None = None  # [B, K, S, S] in [0, 1] per class (class heads only)
    keep_pix: Tensor | None = None  # [B, 1, S, S] in [0, 1]: map of the kept classes (class heads only)


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

    # -- class selection --------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        """Names of the class heads (empty: one merged map)."""
        return self.config.classes

    def selection(self, select: Tensor | None, batch: int, like: Tensor) -> Tensor:
        """``select`` as [batch, K] float32 on ``like``'s device: None → the default (the temporary
        classes at 1); a [K] vector applies to every sample."""
        k = len(self.classes)
        if select is None:
            select = torch.tensor(default_vector(self.classes), dtype=torch.float32)
        select = torch.as_tensor(select).to(device=like.device, dtype=torch.float32)
        if select.dim() == 1:
            select = select.unsqueeze(0).expand(batch, -1)
        if select.shape != (batch, k):
            raise ValueError(f"select must be [{k}] or [{batch}, {k}] (one weight per class head), got {list(select.shape)}")
        return select

    def combine(self, class_maps: Tensor, select: Tensor) -> tuple[Tensor, Tensor]:
        """class_maps [B, K, H, W] in [0, 1], select [B, K] in [0, 1] → (selected, kept), each
        [B, 1, H, W] in [0, 1]: selected = max_c(select_c · m_c), kept = max_c((1 − select_c) · m_c);
        with ``cfg.keep_veto`` selected is multiplied by (1 − kept)."""
        w = select.to(class_maps.dtype)[:, :, None, None]
        selected = (w * class_maps).amax(dim=1, keepdim=True)
        kept = ((1.0 - w) * class_maps).amax(dim=1, keepdim=True)
        if self.config.keep_veto:
            selected = selected * (1.0 - kept)
        return selected, kept

    # -- per-frame parts ----------------------------------------------------------------------
    def encode(self, image: Tensor) -> tuple[list[Tensor], Tensor]:
        """E and N. image [N, 3, S, S] in [-1, 1] → (six encoder features, M [N, C_m, S/8, S/8] in [0, 1])."""
        skips = self.encoder(image)
        return skips, self.localizer(image, skips[-1])

    def frame_step(
        self, image: Tensor, prev_image: Tensor | None = None, prev_mask: Tensor | None = None, has_prev: Tensor | None = None,
        select: Tensor | None = None,
    ) -> FrameState:
        """One step of the per-frame stream for a batch of frames (e.g. one frame of several tracks).

        image [B, 3, S, S] in [-1, 1]; prev_image [B, 3, S, S] and prev_mask M̂ [B, C_m, S/8, S/8]
        of each sample's previous frame (None: every sample starts a track); has_prev [B] bool
        marks the samples that have a predecessor (None: all of them). Samples without one ignore
        prev_image/prev_mask (pass any placeholder). select [B, K] or [K] in [0, 1]: the class
        selection (class heads only; None: the default); ``mask_pix`` is then the combined map of
        the selected classes and ``class_maps``/``keep_pix`` are filled in.
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
        class_maps = keep_pix = None
        if self.classes:
            class_maps = mask_pix
            mask_pix, keep_pix = self.combine(class_maps, self.selection(select, image.shape[0], image))
        elif select is not None:
            raise ValueError("select needs a model with class heads (cfg.classes)")
        kv = self.mma.frame_kv(skips[-1], refined)
        return FrameState(image, skips, m_raw, refined, mask_pix, kv, flow, class_maps, keep_pix)

    # -- window part ----------------------------------------------------------------------------
    def synthesize(
        self, image: Tensor, skips: list[Tensor], mask: Tensor, mask_pix: Tensor, kv: list[tuple[Tensor, Tensor]],
        select: Tensor | None = None, keep_pix: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """MMA, G and composition for a batch of targets.

        image X_t [B, 3, S, S]; skips: the target's six encoder features; mask M̂_t [B, C_m, S/8, S/8];
        mask_pix [B, 1, S, S] in [0, 1] (with class heads: the combined map of the selected
        classes, :meth:`combine`); kv per block (K, V) [B, T, S/8, S/8, C] of the window's frames
        (the target included); class heads only: select [B, K] or [K] (None: the default) and
        keep_pix [B, 1, S, S], the kept classes' map (None: nothing kept) → (out [B, 3, S, S] fp32,
        generated [B, 3, S, S]), both in [-1, 1].
        """
        feat = self.mma(skips[-1], mask, kv)
        if self.classes:
            select = self.selection(select, image.shape[0], image)
            if keep_pix is None:
                keep_pix = torch.zeros_like(mask_pix)
            hole = torch.maximum(mask_pix, keep_pix.to(mask_pix.dtype))  # the fill reads neither removed nor kept features
        elif select is not None or keep_pix is not None:
            raise ValueError("select and keep_pix need a model with class heads (cfg.classes)")
        else:
            hole = mask_pix
        base = self.fill(image, hole) if self.fill is not None else None
        generated = self.decoder(feat, skips, mask_pix, mask, base, select, keep_pix)
        return compose(image, generated, mask_pix), generated

    # -- whole clip -------------------------------------------------------------------------------
    def forward(self, clip: Tensor, target_index: int, return_raw: bool = True, select: Tensor | None = None) -> VROutput:
        """clip [B, T, 3, S, S] in [-1, 1], frames in temporal order; target_index in [0, T).

        Runs E, N on all T frames, FIR as a stream from the clip's first frame (frame 0 has no
        predecessor, like a track start), I on every refined map, MMA with the target against all T
        frames, G, and the composition. ``return_raw=False`` skips ``masks_raw``. With class
        heads, select [B, K] or [K] in [0, 1] chooses what is removed (None: the temporary
        classes); ``mask``, ``masks`` and ``masks_raw`` are then combined maps of the selected
        classes (module docstring) and ``class_maps``/``class_logits`` hold the per-class ones.
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
        masks_raw = self.mask_head(m_raw, skips, frames) if return_raw else None
        kv = [(k.view(b, t, *k.shape[1:]), v.view(b, t, *v.shape[1:])) for k, v in self.mma.frame_kv(skips[-1], refined_all)]

        def pick(x: Tensor) -> Tensor:
            return x.view(b, t, *x.shape[1:])[:, target_index]

        class_maps = class_logits = keep_t = sel = None
        if self.classes:
            sel = self.selection(select, b, clip)
            sel_frames = sel.repeat_interleave(t, dim=0)  # frames are batch-major: sample i owns rows i·T … i·T+T−1
            class_maps, class_logits = masks.view(b, t, -1, *size), logits.view(b, t, -1, *size)
            masks, keep = self.combine(masks, sel_frames)
            keep_t = pick(keep)
            if masks_raw is not None:
                masks_raw = self.combine(masks_raw, sel_frames)[0]
            logits = None
        elif select is not None:
            raise ValueError("select needs a model with class heads (cfg.classes)")
        masks = masks.view(b, t, 1, *size)
        if masks_raw is not None:
            masks_raw = masks_raw.view(b, t, 1, *size)
        mask_pix = masks[:, target_index]
        out, generated = self.synthesize(
            clip[:, target_index], [pick(s) for s in skips], refined[target_index], mask_pix, kv, select=sel, keep_pix=keep_t
        )
        if flows is None:
            full_flows = clip.new_zeros(b, 0, 2, *size)
        else:
            full_flows = resize_flow(flows.reshape(b * (t - 1), *flows.shape[2:]), size).view(b, t - 1, 2, *size)
        return VROutput(
            out=out, generated=generated, mask=mask_pix, masks=masks, masks_raw=masks_raw, flows=full_flows,
            logits=None if logits is None else logits.view(b, t, 1, *size), class_maps=class_maps, class_logits=class_logits,
        )
