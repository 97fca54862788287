"""Building blocks shared by the modules of VRetouchEr: convs, anti-aliased downsampling,
modulated convs, the pixel-adaptive convolution, backward warping, mask broadcasting."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.2


def conv2d(cin: int, cout: int, kernel: int = 3, stride: int = 1, *, gain_slope: float | None = LRELU_SLOPE, bias: bool = True) -> nn.Conv2d:
    """A same-padded conv, He-initialised for the activation that follows (``gain_slope=None``: linear)."""
    layer = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=bias)
    if gain_slope is None:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="linear")
    else:
        nn.init.kaiming_normal_(layer.weight, a=gain_slope, nonlinearity="leaky_relu")
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class Blur(nn.Module):
    """Fixed [1, 2, 1]² low-pass filter (depthwise, reflect-padded): the anti-aliasing before a stride."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        k = (k[:, None] * k[None, :]) / 16.0
        self.channels = channels
        self.register_buffer("kernel", k.expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, H, W] → [B, C, H, W], low-passed."""
        x = F.pad(x, (1, 1, 1, 1), mode="reflect") if min(x.shape[-2:]) > 1 else F.pad(x, (1, 1, 1, 1), mode="replicate")
        return F.conv2d(x, self.kernel.to(x.dtype), groups=self.channels)


class ConvAct(nn.Module):
    """3×3 conv + LeakyReLU(0.2); ``down=True`` blurs, then convolves with stride 2 (anti-aliased)."""

    def __init__(self, cin: int, cout: int, *, down: bool = False, kernel: int = 3):
        super().__init__()
        self.blur = Blur(cin) if down else None
        self.conv = conv2d(cin, cout, kernel, stride=2 if down else 1)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, cin, H, W] → [B, cout, H, W] (or H/2, W/2 when down)."""
        if self.blur is not None:
            x = self.blur(x)
        return F.leaky_relu(self.conv(x), LRELU_SLOPE)


def downsample_area(x: Tensor, factor: int) -> Tensor:
    """Box-filter downsampling by an integer factor (H and W divisible by it)."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


def upsample2(x: Tensor) -> Tensor:
    """Bilinear ×2 upsampling."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def expand_mask(mask: Tensor, channels: int) -> Tensor:
    """Broadcast a C_m-channel map to C feature channels: channel group g of C/C_m uses map channel g.

    mask [B, C_m, H, W] → [B, C, H, W].
    """
    cm = mask.shape[1]
    if cm == channels:
        return mask
    return mask.repeat_interleave(channels // cm, dim=1)


class ModulatedConv2d(nn.Module):
    """StyleGAN2-style modulated conv (AdaIN-like): per-sample input scaling by a style, then
    demodulation so each output channel has unit expected scale. Written as scale → conv → rescale,
    which equals modulating the weight and needs no grouped conv."""

    def __init__(self, cin: int, cout: int, style_dim: int, kernel: int = 3, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel) / math.sqrt(cin * kernel * kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.affine = nn.Linear(style_dim, cin)
        nn.init.normal_(self.affine.weight, std=0.1 / math.sqrt(style_dim))
        nn.init.ones_(self.affine.bias)  # start with unit modulation
        self.demodulate = demodulate
        self.kernel = kernel

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """x [B, cin, H, W], style [B, style_dim] → [B, cout, H, W]."""
        s = self.affine(style)  # [B, cin]
        y = F.conv2d(x * s[:, :, None, None], self.weight, padding=self.kernel // 2)
        if self.demodulate:
            wsq = self.weight.square().sum(dim=(2, 3))  # [cout, cin]
            d = torch.rsqrt(s.square() @ wsq.t() + 1e-8)  # [B, cout]
            y = y * d[:, :, None, None].to(y.dtype)
        return y + self.bias[None, :, None, None].to(y.dtype)


class PixelAdaptiveConv2d(nn.Module):
    """Pixel-adaptive convolution (Su et al., CVPR 2019) in plain PyTorch via unfold.

    out(p) = Σ_q K(g_p, g_q) · W[p − q] · x(q) + b, with the Gaussian kernel
    K = exp(−½ · s² · ‖g_p − g_q‖²) on the guidance features g (s learnt). Zero padding for
    x and g alike.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, *, identity_init: float | None = None, bias_init: float = 0.0):
        super().__init__()
        self.cin, self.cout, self.kernel = cin, cout, kernel
        k2 = kernel * kernel
        weight = torch.randn(cout, cin, k2) * (0.5 / math.sqrt(cin * k2))
        if identity_init is not None:
            centre = k2 // 2
            for c in range(min(cin, cout)):
                weight[c, c, centre] += identity_init
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)))
        self.log_scale = nn.Parameter(torch.tensor(math.log(4.0)))  # guidance bandwidth

    def forward(self, x: Tensor, guide: Tensor) -> Tensor:
        """x [B, cin, H, W], guide [B, cg, H, W] (same H, W) → [B, cout, H, W]."""
        b, _, h, w = x.shape
        k, pad = self.kernel, self.kernel // 2
        xu = F.unfold(x, k, padding=pad).view(b, self.cin, k * k, h * w)
        gu = F.unfold(guide, k, padding=pad).view(b, guide.shape[1], k * k, h * w)
        diff = (gu - guide.reshape(b, guide.shape[1], 1, h * w)).square().sum(dim=1, keepdim=True)
        kern = torch.exp(-0.5 * torch.exp(2.0 * self.log_scale) * diff)  # [B, 1, k², HW]
        out = torch.einsum("oik,bikn->bon", self.weight.to(xu.dtype), xu * kern.to(xu.dtype))
        return (out + self.bias.to(out.dtype)[None, :, None]).view(b, self.cout, h, w)


def _pixel_grid(h: int, w: int, device, dtype) -> tuple[Tensor, Tensor]:
    ys = torch.arange(h, device=device, dtype=dtype).view(h, 1).expand(h, w)
    xs = torch.arange(w, device=device, dtype=dtype).view(1, w).expand(h, w)
    return xs, ys


def warp(x: Tensor, flow: Tensor) -> Tensor:
    """Backward warp: out(p) = x(p + flow(p)), bilinear, border-replicated.

    x [B, C, H, W]; flow [B, 2, H, W] = (dx, dy) in pixels of this grid. Sampling runs in fp32.
    """
    b, _, h, w = x.shape
    flow = flow.float()
    xs, ys = _pixel_grid(h, w, flow.device, torch.float32)
    gx = (xs + flow[:, 0]) * (2.0 / w) + (1.0 / w - 1.0)
    gy = (ys + flow[:, 1]) * (2.0 / h) + (1.0 / h - 1.0)
    grid = torch.stack((gx, gy), dim=-1)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(x.dtype)


def resize_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """Resample a flow field [B, 2, h, w] to ``size`` and rescale its vectors to the new pixel units."""
    h, w = flow.shape[-2:]
    th, tw = int(size[0]), int(size[1])
    if (h, w) == (th, tw):
        return flow
    if th < h and h % th == 0 and w % tw == 0 and h // th == w // tw:
        out = F.avg_pool2d(flow, h // th)
    else:
        out = F.interpolate(flow, size=(th, tw), mode="bilinear", align_corners=False)
    scale = torch.tensor([tw / w, th / h], device=flow.device, dtype=flow.dtype).view(1, 2, 1, 1)
    return out * scale


@lru_cache(maxsize=32)
def _blur_matrix(n: int, sigma: float) -> Tensor:
    """[n, n] matrix B with ``x @ B`` = Gaussian blur of x along its last axis (reflected border).

    A dense matrix is much faster on CPU than a depthwise conv with a long kernel (which has no
    fast path there), and its backward is a matmul too.
    """
    radius = max(1, int(math.ceil(3.0 * sigma)))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    taps = taps / taps.sum()
    m = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        for k in range(-radius, radius + 1):
            j = i + k
            if n > 1:  # reflect (…2 1 | 0 1 2 … n−1 | n−2 …), repeated for kernels wider than n
                period = 2 * (n - 1)
                j = j % period
                j = period - j if j >= n else j
            else:
                j = 0
            m[j, i] += taps[k + radius]
    return m.float()


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of [..., H, W] with reflected borders (as two small matmuls)."""
    h, w = x.shape[-2:]
    bw = _blur_matrix(w, float(sigma)).to(x.device, x.dtype)
    bh = _blur_matrix(h, float(sigma)).to(x.device, x.dtype)
    return bh.t() @ (x @ bw)


class NormConvFill(nn.Module):
    """Classical fill of masked pixels from their unmasked surroundings (no parameters).

    fill = Σ_k c_k·G_σk ∗ (X·w) / Σ_k c_k·G_σk ∗ w, with w = 1 − dilate(M) the weight of the
    pixels that may be read and a few Gaussian scales σ_k (pixels, scaled with the model's S
    relative to 256) whose weights c_k fall with σ: small holes are filled from their nearest ring
    of skin, large ones from further out. Differentiable in X and M. image [B, 3, H, W], mask
    [B, 1, H, W] in [0, 1] → [B, 3, H, W] (where nothing around is readable it falls back to the
    image itself).
    """

    def __init__(self, size: int, sigmas_256: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0)):
        super().__init__()
        scale = size / 256.0
        self.sigmas = tuple(s * scale for s in sigmas_256)
        self.weights = tuple(0.25**i for i in range(len(self.sigmas)))

    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        hole = F.max_pool2d(mask.to(image.dtype), 3, stride=1, padding=1)  # skip the spot's rim too
        keep = 1.0 - hole
        stack = torch.cat([image * keep, keep], dim=1)
        acc = None
        for sigma, c in zip(self.sigmas, self.weights):
            b = gaussian_blur(stack, sigma) * c
            acc = b if acc is None else acc + b
        num, den = acc[:, :3], acc[:, 3:]
        eps = 1e-4
        return (num + eps * image) / (den + eps)


def compose(image: Tensor, generated: Tensor, mask: Tensor) -> Tensor:
    """Pixel-space composition ŷ = X + M ⊙ (G − X), in fp32.

    image, generated [B, 3, H, W] in [-1, 1]; mask [B, 1, H, W] in [0, 1]. Where M = 0 the
    output equals the input bit for bit.
    """
    x = image.float()
    return x + mask.float() * (generated.float() - x)
