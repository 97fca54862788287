"""MMA, the multi-frame masked attention transformer T (MODEL.md §1.5, paper Eqs. 4–6).

Queries come from the target's features inside the imperfection map, keys and values from the
clean parts (1 − M) of the target and its δ references. Attention runs within w×w windows
(each query window sees the same window in every frame), shifted by w/2 on odd blocks, through
``scaled_dot_product_attention``. Keys and values depend only on one frame, so they are a
per-frame part (:meth:`MMATransformer.frame_kv`) that sliding inference computes once per frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .layers import expand_mask


def _shift_labels(n: int, ws: int, shift: int, device) -> Tensor:
    """Region ids along one axis of a cyclically shifted grid (Swin): tokens that wrapped around
    must not attend to their new neighbours."""
    labels = torch.zeros(n, dtype=torch.long, device=device)
    if shift:
        labels[n - ws : n - shift] = 1
        labels[n - shift :] = 2
    return labels


def _shift_mask(h: int, w: int, ws: int, sh: int, sw: int, device) -> Tensor:
    """Boolean [nW, L, L] (True = may attend) for a shifted window partition."""
    ly = _shift_labels(h, ws, sh, device)
    lx = _shift_labels(w, ws, sw, device)
    lab = (ly[:, None] * 3 + lx[None, :]).view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    return lab[:, :, None] == lab[:, None, :]


def window_attention(q: Tensor, k: Tensor, v: Tensor, *, heads: int, window: int, shift: bool, linear: bool) -> Tensor:
    """Windowed multi-frame attention.

    q [B, H, W, C] (target), k, v [B, T, H, W, C] (T frames) → [B, H, W, C]. ``window`` is clipped to
    the feature size and must divide it. ``linear``: the paper's additive aggregation, a softmax
    within each frame's window and the mean of the T per-frame results; otherwise one softmax over
    all T·w² keys.
    """
    b, h, w, c = q.shape
    t = k.shape[1]
    ws = min(window, h, w)
    if h % ws or w % ws:
        raise ValueError(f"attention window {ws} does not divide the feature map {h}×{w}")
    sh = ws // 2 if shift and ws < h else 0
    sw = ws // 2 if shift and ws < w else 0
    if sh or sw:
        q = torch.roll(q, shifts=(-sh, -sw), dims=(1, 2))
        k = torch.roll(k, shifts=(-sh, -sw), dims=(2, 3))
        v = torch.roll(v, shifts=(-sh, -sw), dims=(2, 3))
    nh, nw, L, d = h // ws, w // ws, ws * ws, c // heads
    nwin = nh * nw
    qw = q.reshape(b, nh, ws, nw, ws, heads, d).permute(0, 1, 3, 5, 2, 4, 6).reshape(b * nwin, heads, L, d)
    mask = _shift_mask(h, w, ws, sh, sw, q.device) if (sh or sw) else None  # [nW, L, L]
    if not linear:
        # frames of one window laid end to end along the key axis
        def part(x: Tensor) -> Tensor:
            x = x.reshape(b, t, nh, ws, nw, ws, heads, d).permute(0, 2, 4, 6, 1, 3, 5, 7)
            return x.reshape(b * nwin, heads, t * L, d)

        attn_mask = None
        if mask is not None:
            attn_mask = mask.repeat(1, 1, t).unsqueeze(0).expand(b, -1, -1, -1).reshape(b * nwin, 1, L, t * L)
        out = F.scaled_dot_product_attention(qw, part(k), part(v), attn_mask=attn_mask)
    else:
        def part(x: Tensor) -> Tensor:
            x = x.reshape(b, t, nh, ws, nw, ws, heads, d).permute(0, 2, 4, 1, 6, 3, 5, 7)
            return x.reshape(b * nwin * t, heads, L, d)

        q5 = qw.unsqueeze(1).expand(-1, t, -1, -1, -1).reshape(b * nwin * t, heads, L, d)
        attn_mask = None
        if mask is not None:
            attn_mask = mask[None, :, None].expand(b, -1, t, -1, -1).reshape(b * nwin * t, 1, L, L)
        out = F.scaled_dot_product_attention(q5, part(k), part(v), attn_mask=attn_mask)
        out = out.view(b * nwin, t, heads, L, d).mean(dim=1)
    out = out.view(b, nh, nw, heads, ws, ws, d).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, h, w, c)
    if sh or sw:
        out = torch.roll(out, shifts=(sh, sw), dims=(1, 2))
    return out


class FeedForward(nn.Module):
    """Pre-norm feed-forward on tokens: (k×k conv or linear) C → r·C, GELU, linear r·C → C."""

    def __init__(self, dim: int, ratio: float, kernel: int):
        super().__init__()
        hidden = max(1, int(round(dim * ratio)))
        self.kernel = kernel
        if kernel == 1:
            self.fc1: nn.Module = nn.Linear(dim, hidden)
        else:
            self.fc1 = nn.Conv2d(dim, hidden, kernel, padding=kernel // 2)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, H, W, C] → [B, H, W, C]."""
        if self.kernel == 1:
            y = self.fc1(x)
        else:
            y = self.fc1(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.fc2(F.gelu(y))


class MMABlock(nn.Module):
    """One MMA block: Q_t = W_q(LN(f_t) ⊙ M_t), K_r = W_k(LN(f_r) ⊙ (1−M_r)), V_r likewise,
    windowed attention, f_t ← f_t ⊙ (1−M_t) + W_o(attn) ⊙ M_t (Eq. 6), then a pre-norm residual MLP."""

    def __init__(self, cfg: ModelConfig, shift: bool):
        super().__init__()
        c = cfg.channels
        self.channels, self.heads, self.window, self.shift = c, cfg.heads, cfg.window, shift
        self.linear = cfg.attention == "linear"
        self.norm_q = nn.LayerNorm(c)
        self.norm_kv = nn.LayerNorm(c)
        self.q = nn.Linear(c, c)
        self.k = nn.Linear(c, c)
        self.v = nn.Linear(c, c)
        self.proj = nn.Linear(c, c)
        self.norm_ff = nn.LayerNorm(c)
        self.ff = FeedForward(c, cfg.mlp_ratio, cfg.ffn_kernel)

    def frame_kv(self, feat: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
        """feat f_r [N, H, W, C] tokens, keep = 1 − M_r broadcast to C [N, H, W, C] → K, V [N, H, W, C]."""
        x = self.norm_kv(feat) * keep
        return self.k(x), self.v(x)

    def forward(self, x: Tensor, mask: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """x f_t [B, H, W, C]; mask M_t broadcast to C [B, H, W, C] in [0, 1]; k, v [B, T, H, W, C] → [B, H, W, C]."""
        q = self.q(self.norm_q(x) * mask)
        a = window_attention(q, k.to(q.dtype), v.to(q.dtype), heads=self.heads, window=self.window, shift=self.shift, linear=self.linear)
        a = self.proj(a)
        x = x * (1.0 - mask) + a * mask
        return x + self.ff(self.norm_ff(x))


class MMATransformer(nn.Module):
    """T: K MMA blocks, shifted windows on odd blocks."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.channels = cfg.channels
        self.blocks = nn.ModuleList(MMABlock(cfg, shift=i % 2 == 1) for i in range(cfg.mma_blocks))

    def frame_kv(self, feat: Tensor, mask: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per-frame keys/values of every block.

        feat f [N, C, h, w]; mask M̂ [N, C_m, h, w] in [0, 1] → per block (K, V), each [N, h, w, C].
        """
        tokens = feat.permute(0, 2, 3, 1)
        keep = 1.0 - expand_mask(mask, self.channels).permute(0, 2, 3, 1).to(tokens.dtype)
        return [block.frame_kv(tokens, keep) for block in self.blocks]

    def forward(self, feat: Tensor, mask: Tensor, kv: list[tuple[Tensor, Tensor]]) -> Tensor:
        """feat f_t [B, C, h, w]; mask M̂_t [B, C_m, h, w] in [0, 1]; kv per block (K, V) [B, T, h, w, C]
        of the target and its references → f̂_t [B, C, h, w]."""
        x = feat.permute(0, 2, 3, 1)
        m = expand_mask(mask, self.channels).permute(0, 2, 3, 1).to(x.dtype)
        for block, (k, v) in zip(self.blocks, kv):
            x = block(x, m, k, v)
        return x.permute(0, 3, 1, 2).contiguous()
