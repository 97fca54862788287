"""The adversarial training loop: G (VRetouchEr) + multi-scale PatchGAN D, EMA, checkpoints, DDP.

One step (per rank, batch B of T = δ + 1 frame clips, target = the centre frame):

1. G forward on the raw clip (bf16 autocast on CUDA, fp32 on CPU).
2. Generator loss ``ζ·L1 + w_p·VGG + w_adv·hinge_G(D(ŷ)) + w_flow·L_flow + w_imp·L_imp`` with D
   frozen; backward, gradient clipping, Adam step.
3. Discriminator hinge loss on ``[y, ŷ.detach()]`` (one forward through the DDP-wrapped D);
   backward, clipping, Adam step.
4. EMA update of G (decay warmed up as ``min(decay, (1+n)/(10+n))``).

A model with class heads (``ModelConfig.classes``, issue 11) trains on a class cache only
(``--build-cache … --cache-classes``): each sample's selection goes into G, the target is that
selection's, and the map terms (balanced: BCE and soft Dice; paper: L1) are taken per class
against each class's own change at ``--gt-scale`` (:func:`class_ground_truth`; the Dice term only
on the samples where the class is) and averaged over the classes (each class's part is logged as
``bce_<class>`` / ``dice_<class>``); validation adds ``soft_iou_<class>``.

Exact resume: all data comes from keys that depend only on (seed, step, rank), no extra global
RNG draw happens outside the steps (validation and export run under ``fork_rng``), and the
checkpoint holds model, EMA, D, both optimisers, the grad scaler and every rank's RNG states.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError, UsageError
from . import distributed as ddp
from .config import RUN_CONTROL_FIELDS, TrainConfig
from .data import ClipDataset, DataSplit, StepSampler, discover, flows_from_affines_torch, to_model_range, worker_context, worker_init
from .losses import (
    balanced_map_loss,
    blemish_regions,
    build_perceptual,
    d_hinge_loss,
    g_hinge_loss,
    gt_imperfection_map,
    region_l1,
    region_mse,
    soft_dice_loss,
    temporal_loss,
)
from .report import JsonlLog, contact_sheet, plot_log, to_uint8
from .state import capture_rng, latest_checkpoint, load_checkpoint, restore_rng, save_checkpoint

LOG_FILE = "log.jsonl"
PLOT_FILE = "plot.png"
EXPORT_FILE = "weights_ema.safetensors"


# Set by the CLI's SIGINT/SIGTERM handler: the loop then stops as at the --max-minutes budget
# (checkpoint, validate, export), so an interrupted run can be resumed.
STOP = threading.Event()


def _gt_scale(scale: float | None) -> float:
    """--gt-scale, or the evaluator's GT_MAP_SCALE when it was not given."""
    from ..evaluate.metrics import GT_MAP_SCALE

    return GT_MAP_SCALE if scale is None else float(scale)


def map_ground_truth(batch: dict[str, torch.Tensor], raw: torch.Tensor, tgt: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The merged map's M_gt [B, T, 1, S, S] at ``cfg.gt_map_scale``: from ``|raw − target|`` after
    the camera (``--map-target camera``), or from the pair's change before it (``exact``: the
    cache's ``change``, :func:`.patches.exact_change`)."""
    if cfg.map_target == "exact":
        return (batch["change"].to(raw.device, non_blocking=True).float() / _gt_scale(cfg.gt_map_scale)).clamp(0.0, 1.0)
    return gt_imperfection_map(raw, tgt, cfg.gt_map_scale)


def class_ground_truth(batch: dict[str, torch.Tensor], gt_scale: float | None) -> torch.Tensor:
    """The class heads' targets: each class's own change (``class_diff``, :class:`.patches.PatchDataset`)
    divided by ``gt_scale`` (None: the evaluator's) and clipped to [0, 1], as
    :func:`gt_imperfection_map` makes the merged map's from ``|raw − target|``. Float32, the shape
    of ``class_diff``."""
    return (batch["class_diff"].float() / _gt_scale(gt_scale)).clamp(0.0, 1.0)


class Callbacks:
    """Hooks for a user interface (the CLI's progress bar). Called on rank 0 only."""

    def on_start(self, start_step: int, total_steps: int, info: dict[str, Any]) -> None: ...

    def on_step(self, step: int, record: dict[str, Any]) -> None: ...

    def on_validate(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_message(self, text: str) -> None: ...


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    checkpoint: Path | None
    export: Path | None
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_by_time: bool = False
    rank_digests: list[str] = field(default_factory=list)  # sha256 of G's weights on every rank


# ----------------------------------------------------------------------------- helpers


def model_config_for(cfg: TrainConfig):
    from ..model.config import ModelConfig

    mcfg = ModelConfig.preset(cfg.preset)
    changes = dict(cfg.model_overrides)
    if cfg.size is not None:
        changes["size"] = cfg.size
    if cfg.delta is not None:
        changes["delta"] = cfg.delta
    if changes:
        mcfg = mcfg.replace(**changes)
    return mcfg


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied)."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, src: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        ema_p = list(self.module.parameters())
        src_p = [p.detach() for p in src.parameters()]
        torch._foreach_lerp_(ema_p, src_p, 1.0 - d)
        for b_ema, b in zip(self.module.buffers(), src.buffers()):
            b_ema.copy_(b)


def _lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then constant, or a cosine from ``lr`` to ``lr·lr_final`` at ``steps``."""
    if cfg.lr_warmup > 0 and step < cfg.lr_warmup:
        return cfg.lr * (step + 1) / cfg.lr_warmup
    if cfg.lr_final >= 1.0 or cfg.steps <= cfg.lr_warmup:
        return cfg.lr
    progress = min(max((step - cfg.lr_warmup) / (cfg.steps - cfg.lr_warmup), 0.0), 1.0)
    return cfg.lr * (cfg.lr_final + (1.0 - cfg.lr_final) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device_type=device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def _make_scaler(device: torch.device, dtype: torch.dtype | None):
    return torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu", enabled=dtype == torch.float16)


def _split_logits(logits: list[torch.Tensor], n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return [x[:n] for x in logits], [x[n:] for x in logits]


def _unit(x: torch.Tensor) -> np.ndarray:
    """[3, S, S] in [-1, 1] → S×S×3 float64 in [0, 1], quantised to 8 bit like a written frame."""
    return np.round(((x.float().clamp(-1, 1) + 1.0) * 127.5).permute(1, 2, 0).cpu().numpy()) / 255.0


def _first_mismatch(mine: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> str:
    """The first tensor that keeps a state dict from loading into another ('' when none)."""
    for name, t in mine.items():  # module order: the first layer that differs
        if name not in theirs:
            return f"{name} is missing from the file"
        if t.shape != theirs[name].shape:
            return f"{name} is {list(theirs[name].shape)} in the file but {list(t.shape)} here"
    extra = [name for name in theirs if name not in mine]
    return f"the file has {extra[0]}, this run's model does not" if extra else ""


class Models:
    """G, D, the EMA of G, both Adam optimisers, the grad scaler and the loss modules of a run.

    :meth:`step` is one training step (module docstring); the speed benchmark calls it too.
    """

    def __init__(self, mcfg, cfg: TrainConfig, device: torch.device, dtype: torch.dtype | None, perceptual=None) -> None:
        from ..model.discriminator import PatchDiscriminator
        from ..model.network import VRetouchEr

        torch.manual_seed(cfg.seed)
        self.cfg, self.device, self.dtype = cfg, device, dtype
        self.frames = mcfg.delta + 1
        self.G = VRetouchEr(mcfg).to(device)
        self.D = PatchDiscriminator(mcfg).to(device)
        self.ema = EMA(self.G, cfg.ema_decay)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
        self.scaler = _make_scaler(device, dtype)
        self.perceptual = perceptual.to(device) if perceptual is not None else None
        self.G_run, self.D_run = self.G, self.D

    def wrap_ddp(self, device: torch.device) -> None:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        self.G_run = DDP(self.G, device_ids=ids)
        self.D_run = DDP(self.D, device_ids=ids)

    def train(self) -> None:
        self.G_run.train()
        self.D_run.train()

    def state_dict(self) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(),
            "G_ema": self.ema.module.state_dict(),
            "D": self.D.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def init_from(self, spec: str) -> str:
        """Start G and its EMA from a weights file (``--init``); the architectures must match
        (δ and S may differ: they change no weight), except that a run with class heads may start
        from weights without them (:func:`~vretouch_cli.model.transfer.add_class_heads`) and a run
        with a wider G or map path (``dec_channels``, ``loc_channels``, ``head_channels``) from a
        narrower one (:func:`~vretouch_cli.model.transfer.grow_widths`); the new model then starts as the
        source model. Returns the line to log."""
        from ..checkpoint import load_model
        from ..model.transfer import GROWABLE, add_class_heads, grow_widths
        from ..weights import resolve_weights

        path = resolve_weights(spec)
        src = load_model(path, device="cpu")
        mine, theirs = self.G.state_dict(), src.state_dict()
        have, want = src.config.classes, self.G.config.classes
        done = ""
        if have != want and not have:
            try:
                state, info = add_class_heads(theirs, self.G)
            except ValueError as exc:
                raise UsageError(f"--init {spec}: its architecture differs from this run's (preset / --model-option): {exc}") from None
            done = f"; {info.describe()}"
        elif have != want:
            raise UsageError(
                f"--init {spec}: its class heads ({', '.join(have)}) differ from this run's ({', '.join(want) or 'none'}); weights cannot be reused"
            )
        elif any(getattr(src.config, k) != getattr(self.G.config, k) for k in GROWABLE):
            try:
                state, grown = grow_widths(theirs, src.config, self.G)
            except ValueError as exc:
                raise UsageError(f"--init {spec}: its architecture differs from this run's (preset / --model-option): {exc}") from None
            done = f"; {grown.describe()}"
        else:
            bad = _first_mismatch(mine, theirs)
            if bad:
                raise UsageError(f"--init {spec}: its architecture differs from this run's (preset / --model-option): {bad}")
            state = {k: v.float() for k, v in theirs.items()}
        self.G.load_state_dict(state)
        self.ema.module.load_state_dict(self.G.state_dict())
        return f"{path}{done}"

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.ema.module.load_state_dict(state["G_ema"])
        self.D.load_state_dict(state["D"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

    def step(self, batch: dict[str, torch.Tensor], step: int, lr: float) -> dict[str, torch.Tensor]:
        """One G step, one D step, one EMA update; returns the (detached) loss terms."""
        cfg, device, dtype, w = self.cfg, self.device, self.dtype, self.cfg.losses
        G, D, scaler = self.G, self.D, self.scaler
        T = self.frames
        ti = T // 2
        raw = to_model_range(batch["raw"].to(device, non_blocking=True))
        tgt = to_model_range(batch["target"].to(device, non_blocking=True))
        flow_gt = flows_from_affines_torch(batch["affines"].to(device), raw.shape[-1]) if T > 1 else None
        y = tgt[:, ti]
        for opt in (self.opt_G, self.opt_D):
            for g in opt.param_groups:
                g["lr"] = lr

        # generator step (D frozen; D's own module so DDP does not expect D gradients)
        D.requires_grad_(False)
        balanced = cfg.objective == "balanced"
        # Class heads (issue 11): the sample's selection goes into G, and each class's map is
        # trained against that class's own change at --gt-scale (batch["class_diff"], every class
        # whatever the selection: the merged map's ground truth, class by class); the image terms
        # use the selection's target, as without heads.
        heads = self.G.config.classes
        extra: dict[str, torch.Tensor] = {}
        if heads:
            extra["select"] = batch["select"].to(device, non_blocking=True).float()
            class_gt = class_ground_truth(batch, cfg.gt_map_scale).to(device, non_blocking=True)  # [B, T, K, S, S]
        with _autocast(device, dtype):
            out = self.G_run(raw, ti, return_raw=w.imperfection > 0 and not balanced, **extra)
        pred = out.out
        terms: dict[str, torch.Tensor] = {}
        logged: dict[str, torch.Tensor] = {}  # per-class parts of the terms: logged, not added again
        if balanced:
            m_gt = map_ground_truth(batch, raw, tgt, cfg)  # [B, T, 1, S, S]
            _, region = blemish_regions(m_gt[:, ti])
            spots = (m_gt[:, ti] > 0.02).float()
            terms["spot"] = region_l1(pred, y, region)
            if w.spot_l2 > 0:
                terms["spot_l2"] = region_mse(pred, y, region)
            terms["clean"] = region_l1(pred, y, 1.0 - region)
            terms["gen"] = region_l1(out.generated, y, spots)
            if heads:
                for k, name in enumerate(heads):
                    gt_k = class_gt[:, :, k : k + 1]
                    logged[f"bce_{name}"] = balanced_map_loss(out.class_logits[:, :, k : k + 1], gt_k, self.G.config.mask_floor, w.pos_weight_cap, w.ring_weight)
                    logged[f"dice_{name}"] = soft_dice_loss(out.class_maps[:, :, k : k + 1], gt_k, present_only=True)
                terms["bce"] = torch.stack([logged[f"bce_{name}"] for name in heads]).mean()
                terms["dice"] = torch.stack([logged[f"dice_{name}"] for name in heads]).mean()
                if w.keep > 0:  # what the sample keeps must come out as it went in
                    kept = ((1.0 - extra["select"])[:, :, None, None] * class_gt[:, ti]).amax(dim=1, keepdim=True)
                    terms["keep"] = region_l1(pred, y, (kept > 0.05).float())
            else:
                terms["bce"] = balanced_map_loss(out.logits, m_gt, self.G.config.mask_floor, w.pos_weight_cap, w.ring_weight)
                terms["dice"] = soft_dice_loss(out.masks, m_gt)
        else:
            terms["l1"] = F.l1_loss(pred.float(), y)
        if self.perceptual is not None:
            with _autocast(device, dtype):
                terms["perceptual"] = self.perceptual(pred, y)
        if w.adversarial > 0:
            with _autocast(device, dtype):
                terms["adv_g"] = g_hinge_loss(D(pred))
        if w.temporal > 0 and T > 1:
            with _autocast(device, dtype):
                prev = self.G_run(raw, ti - 1, return_raw=False, **extra)
            terms["temporal"] = temporal_loss(
                pred, y, prev.out, tgt[:, ti - 1], flow_gt[:, ti - 1], region if balanced else None, out.mask, prev.mask
            )
        if w.flow > 0 and T > 1:
            terms["flow"] = F.l1_loss(out.flows.float(), flow_gt)
        if w.imperfection > 0 and not balanced and heads:
            terms["imp"] = F.l1_loss(out.class_maps.float(), class_gt)  # every class's map against its own change
        elif w.imperfection > 0 and not balanced:
            m_gt = map_ground_truth(batch, raw, tgt, cfg)
            imp = F.l1_loss(out.masks.float(), m_gt)
            if out.masks_raw is not None:
                imp = 0.5 * (imp + F.l1_loss(out.masks_raw.float(), m_gt))
            terms["imp"] = imp
        weights = {
            "l1": w.l1, "perceptual": w.perceptual, "adv_g": w.adversarial, "flow": w.flow, "imp": w.imperfection,
            "spot": w.spot, "spot_l2": w.spot_l2, "clean": w.clean, "gen": w.gen, "bce": w.bce, "dice": w.dice, "keep": w.keep,
            "temporal": w.temporal,
        }
        loss_g = sum(weights[k] * v for k, v in terms.items())
        self.opt_G.zero_grad(set_to_none=True)
        scaler.scale(loss_g).backward()
        scaler.unscale_(self.opt_G)
        if cfg.grad_clip > 0:
            terms["grad_norm_g"] = torch.nn.utils.clip_grad_norm_(G.parameters(), cfg.grad_clip)
        scaler.step(self.opt_G)
        D.requires_grad_(True)

        # discriminator step: real and fake in one forward of the (DDP-wrapped) D
        if w.adversarial > 0:
            with _autocast(device, dtype):
                logits = self.D_run(torch.cat([y, pred.detach().to(y.dtype)], dim=0))
            real, fake = _split_logits(logits, y.shape[0])
            loss_d = d_hinge_loss(real, fake)
            self.opt_D.zero_grad(set_to_none=True)
            scaler.scale(loss_d).backward()
            scaler.unscale_(self.opt_D)
            if cfg.grad_clip > 0:
                terms["grad_norm_d"] = torch.nn.utils.clip_grad_norm_(D.parameters(), cfg.grad_clip)
            scaler.step(self.opt_D)
            terms["d"] = loss_d
        scaler.update()
        self.ema.update(G, step)
        terms["total_g"] = loss_g
        terms.update(logged)
        return {k: v.detach() for k, v in terms.items()}


def _param_digest(model: torch.nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(model, items: list[dict[str, torch.Tensor]], device, dtype, batch_size: int, gt_scale: float | None) -> tuple[dict[str, float], list[list[np.ndarray]]]:
    """PSNR / SSIM of the output and of the raw input against the target, the PSNR gain, the
    Soft-IoU of the predicted imperfection map against M_gt (summed over the whole set), and the
    flow end-point error (and ``soft_iou_exact`` against the change before the camera where the
    items carry it). Returns (metrics, contact-sheet rows of the first six items)."""
    from ..evaluate.metrics import psnr, ssim

    model.eval()
    t = items[0]["raw"].shape[0]
    ti = t // 2
    ps, ps_raw, ss, epe = [], [], [], []
    inter = union = inter_x = union_x = 0.0
    heads = tuple(model.config.classes)
    inter_c = torch.zeros(len(heads), dtype=torch.float64)
    union_c = torch.zeros(len(heads), dtype=torch.float64)
    rows: list[list[np.ndarray]] = []
    for i in range(0, len(items), batch_size):
        chunk = items[i : i + batch_size]
        raw = to_model_range(torch.stack([c["raw"] for c in chunk]).to(device))
        tgt = to_model_range(torch.stack([c["target"] for c in chunk]).to(device))
        extra = {}
        if heads and "select" in chunk[0]:
            extra["select"] = torch.stack([c["select"] for c in chunk]).to(device)
        with _autocast(device, dtype):
            out = model(raw, ti, return_raw=False, **extra)
        if heads and "class_maps" in chunk[0]:
            gt_c = class_ground_truth({"class_diff": torch.stack([c["class_diff"][ti] for c in chunk])}, gt_scale).to(device)  # [B, K, S, S]
            p_c = out.class_maps[:, ti].float().clamp(0, 1)
            inter_c += torch.minimum(p_c, gt_c).sum(dim=(0, 2, 3)).double().cpu()
            union_c += torch.maximum(p_c, gt_c).sum(dim=(0, 2, 3)).double().cpu()
        m_gt = gt_imperfection_map(raw[:, ti], tgt[:, ti], gt_scale)
        pred = out.mask.float().clamp(0, 1)
        inter += float(torch.minimum(pred, m_gt).sum())
        union += float(torch.maximum(pred, m_gt).sum())
        if "change" in chunk[0]:  # against the exact change before the camera, as --map-target exact trains
            m_ex = (torch.stack([c["change"][ti] for c in chunk]).to(device).float() / _gt_scale(gt_scale)).clamp(0, 1)
            inter_x += float(torch.minimum(pred, m_ex).sum())
            union_x += float(torch.maximum(pred, m_ex).sum())
        if t > 1:
            flow_gt = flows_from_affines_torch(torch.stack([c["affines"] for c in chunk]).to(device), raw.shape[-1])
            epe.append(float((out.flows.float() - flow_gt).norm(dim=2).mean()))
        for b in range(len(chunk)):
            o, x, y = _unit(out.out[b]), _unit(raw[b, ti]), _unit(tgt[b, ti])
            p_out, p_raw = psnr(o, y, data_range=1.0), psnr(x, y, data_range=1.0)
            ps.append(p_out)
            ps_raw.append(p_raw)
            ss.append(ssim(o, y, data_range=1.0))
            if len(rows) < 6:
                diff = np.clip(np.abs(o - y).mean(axis=2) * 8.0, 0, 1)
                rows.append(
                    [
                        to_uint8(raw[b, ti].cpu().numpy()),
                        to_uint8(out.out[b].float().cpu().numpy()),
                        to_uint8(tgt[b, ti].cpu().numpy()),
                        to_uint8(pred[b].cpu().numpy()),
                        to_uint8(m_gt[b].cpu().numpy()),
                        to_uint8(diff),
                    ]
                )

    def finite_mean(v: list[float]) -> float:
        a = np.asarray(v, np.float64)
        a = a[np.isfinite(a)]
        return float(a.mean()) if a.size else float("nan")

    gains = [a - b for a, b in zip(ps, ps_raw) if math.isfinite(a) and math.isfinite(b)]
    metrics = {
        "psnr": finite_mean(ps),
        "psnr_raw": finite_mean(ps_raw),
        "psnr_gain": float(np.mean(gains)) if gains else 0.0,
        "ssim": finite_mean(ss),
        "soft_iou": inter / union if union > 0 else 1.0,
        "n": len(items),
    }
    if union_x > 0:
        metrics["soft_iou_exact"] = inter_x / union_x
    if epe:
        metrics["flow_epe"] = float(np.mean(epe))
    if heads and "class_maps" in items[0]:
        for k, name in enumerate(heads):  # each class's map against its own change at --gt-scale
            metrics[f"soft_iou_{name}"] = float(inter_c[k] / union_c[k]) if union_c[k] > 0 else 1.0
    return metrics, rows


VAL_HEADERS = ("raw", "output (EMA)", "target", "pred. mask", "GT mask", "|out-target| x8")


# ----------------------------------------------------------------------------- the loop


def _resolve_config(cfg: TrainConfig, resume: bool, overrides: dict[str, Any]) -> tuple[TrainConfig, dict | None]:
    run = Path(cfg.out)
    if not resume:
        if latest_checkpoint(run) is not None:
            raise UsageError(f"{run} already holds a training run; pass --resume to continue it or choose another --out")
        return cfg, None
    if latest_checkpoint(run) is None:
        raise InputError(f"--resume: no checkpoint in {run / 'checkpoints'}")
    state = load_checkpoint(run)
    saved = TrainConfig.from_dict(state["train_config"])
    allowed = {k: v for k, v in overrides.items() if k in RUN_CONTROL_FIELDS and v is not None}
    if saved.lr_final < 1.0 and allowed.get("steps", saved.steps) != saved.steps:
        raise UsageError(
            f"--resume: this run's LR decays to step {saved.steps} (--lr-final {saved.lr_final:g}); "
            "changing --steps would change the schedule of the steps already taken"
        )
    return saved.replace(out=str(run), **allowed), state


def train(cfg: TrainConfig, resume: bool = False, overrides: dict[str, Any] | None = None, callbacks: Callbacks | None = None) -> TrainResult:
    """Run (or resume) training as ``cfg`` says; returns where things were written.

    With ``resume`` the run folder's latest checkpoint supplies the configuration; only the
    run-control fields in ``overrides`` (steps, time budget, workers, schedules…) may change.
    """
    t_begin = time.monotonic()
    cb = callbacks or Callbacks()
    cfg, state = _resolve_config(cfg, resume, overrides or {})
    info = ddp.setup(cfg.device)
    try:
        return _train(cfg, state, info, cb, t_begin)
    finally:
        ddp.cleanup(info)


def _train(cfg: TrainConfig, state: dict | None, info: ddp.DistInfo, cb: Callbacks, t_begin: float) -> TrainResult:
    from ..device import autocast_dtype

    run = Path(cfg.out)
    device = info.device
    main = info.is_main
    dtype = autocast_dtype(device, cfg.precision)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    from ..model.config import ModelConfig

    mcfg = ModelConfig.from_dict(state["model_config"]) if state else model_config_for(cfg)
    S, T = mcfg.size, mcfg.delta + 1

    log = JsonlLog(run / LOG_FILE)
    messages: list[str] = []

    def say(text: str) -> None:
        if main:
            messages.append(text)
            cb.on_message(text)

    # -- data (rank 0 first: it may detect and align raw photos into the cache) ----------------
    from .data import detect_mode

    mode = cfg.data_mode if cfg.data_mode != "auto" else detect_mode(Path(cfg.data))
    heads = tuple(mcfg.classes) or None
    if heads:
        from .patches import has_classes

        # Per-class maps and selection-dependent targets exist only in a class cache (issue 11):
        # fail clearly here instead of deep inside a loss.
        if mode != "patches" or not has_classes(cfg.data):
            raise UsageError(
                f"a model with class heads ({', '.join(heads)}) needs per-class training data: build a class cache with "
                "`vretouch train --build-cache PREP -o CACHE --cache-classes` and train with --data CACHE"
            )
    if cfg.map_target == "exact" and not heads and (mode != "patches" or not (Path(cfg.data) / "change.npy").is_file()):
        raise UsageError(
            f"--map-target exact needs each pair's change before the camera, which {cfg.data} does not hold: rebuild the cache "
            "with `vretouch train --build-cache PREP -o CACHE` (caches record it since session 4), or use --map-target camera"
        )
    if main:
        run.mkdir(parents=True, exist_ok=True)
    val_items: list[dict[str, torch.Tensor]] = []
    if mode == "patches":
        from .patches import PatchDataset, PatchParams, cache_items, is_cache

        train_set = PatchDataset(cfg.data, T, PatchParams(patch=cfg.patch), classes=heads)
        n_train = len(train_set)
        val_root = Path(cfg.data) / "val"
        say(f"data: cached training pairs {cfg.data} ({n_train} items, {cfg.patch or 'whole'}-px crops)" + (f"; a selection per sample for the class heads {', '.join(heads)}" if heads else ""))
        if main and cfg.val_items > 0 and is_cache(val_root) and not cache_items(val_root):
            say(f"no validation: {val_root} holds no pairs (no held-out people)")
        elif main and cfg.val_items > 0 and is_cache(val_root):
            val_set = PatchDataset(val_root, T, PatchParams(patch=0), classes=heads if heads and has_classes(val_root) else None)
            val_items = [val_set[(i % len(val_set), 10_000_019 + i)] for i in range(cfg.val_items)]
    else:
        split: DataSplit | None = None
        if main:
            run.mkdir(parents=True, exist_ok=True)
            split = discover(cfg.data, mode, cfg.val_fraction, S, cache_root=run / "face_cache")
        ddp.barrier(info)
        if not main:
            split = discover(cfg.data, mode, cfg.val_fraction, S, cache_root=run / "face_cache")
        assert split is not None
        say(f"data: {split.note}")
        train_set = ClipDataset(split.train, S, T)
        n_train = len(split.train)
        if main and split.val and cfg.val_items > 0:
            val_set = ClipDataset(split.val, S, T)
            val_items = [val_set[(i % len(val_set), 10_000_019 + i)] for i in range(cfg.val_items)]
    start_step = int(state["step"]) if state else 0
    sampler = StepSampler(len(train_set), cfg.batch_size, cfg.seed, start_step, info.rank, info.world)
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
        prefetch_factor=4 if cfg.num_workers > 0 else None,
        generator=torch.Generator().manual_seed(cfg.seed),  # never touch the global RNG
        worker_init_fn=worker_init if cfg.num_workers > 0 else None,
        multiprocessing_context=worker_context() if cfg.num_workers > 0 else None,
        timeout=300 if cfg.num_workers > 0 else 0,  # a stuck worker becomes an error, not a silent hang
    )

    # -- models and optimisers -----------------------------------------------------------------
    w = cfg.losses
    perceptual = None
    if w.perceptual > 0:
        perceptual, msg = build_perceptual(cfg.vgg_weights, tuple(cfg.vgg_layers))
        say(msg)
    models = Models(mcfg, cfg, device, dtype, perceptual)
    G, ema = models.G, models.ema
    elapsed_before = 0.0
    if state is None and cfg.init:
        say(f"initialised G from {models.init_from(cfg.init)}")
    if state:
        models.load_state_dict(state)
        rngs = state["rng"]
        if len(rngs) != info.world:
            say(f"the checkpoint was written by {len(rngs)} rank(s), this run has {info.world}: RNG streams differ from an uninterrupted run")
        restore_rng(rngs[min(info.rank, len(rngs) - 1)])
        elapsed_before = float(state.get("elapsed", 0.0))
        if main:
            log.truncate_after(start_step)
    if info.enabled:
        models.wrap_ddp(device)

    total = cfg.steps
    if main:
        n_g = sum(p.numel() for p in G.parameters())
        info_d = {
            "preset": cfg.preset, "size": S, "frames": T, "params_G": n_g, "device": str(device), "world": info.world,
            "precision": str(dtype).replace("torch.", "") if dtype else "fp32", "batch_per_rank": cfg.batch_size,
            "train_items": n_train, "val_items": len(val_items),
        }
        log.write({"kind": "start", "step": start_step, "resume": bool(state), "info": info_d, "config": cfg.to_dict(), "model_config": mcfg.to_dict()})
        for m in messages:
            log.write({"kind": "message", "step": start_step, "text": m})
        cb.on_start(start_step, total, info_d)

    # -- helpers that must not disturb the RNG streams ---------------------------------------------
    last_val: dict[str, float] = {}
    last_val_seconds = 0.0

    def run_validation(step: int) -> None:
        nonlocal last_val, last_val_seconds
        if not (main and val_items):
            return
        t0 = time.monotonic()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            metrics, rows = validate(ema.module, val_items, device, dtype, max(1, cfg.batch_size), cfg.gt_map_scale)
        log.write({"kind": "val", "step": step, "metrics": metrics})
        if rows:
            contact_sheet(rows, VAL_HEADERS, run / "samples" / f"val_{step:08d}.png")
            contact_sheet(rows, VAL_HEADERS, run / "samples" / "val_latest.png")
        plot_log(log.read(), run / PLOT_FILE)
        last_val = metrics
        last_val_seconds = time.monotonic() - t0
        cb.on_validate(step, metrics)

    last_ckpt_path: Path | None = None
    last_ckpt_seconds = 0.0

    def write_checkpoint(step: int, elapsed: float) -> None:
        nonlocal last_ckpt_path, last_ckpt_seconds
        t0 = time.monotonic()
        rngs = ddp.gather_objects(info, capture_rng())
        if main:
            payload = {
                "model_config": mcfg.to_dict(),
                "train_config": cfg.to_dict(),
                **models.state_dict(),
                "rng": rngs,
                "world_size": info.world,
                "elapsed": elapsed,
            }
            last_ckpt_path = save_checkpoint(run, step, payload, keep=cfg.keep_checkpoints)
            log.write({"kind": "checkpoint", "step": step, "path": str(last_ckpt_path)})
        ddp.barrier(info)
        last_ckpt_seconds = time.monotonic() - t0

    # -- training --------------------------------------------------------------------------------
    models.train()
    it = iter(loader)
    t_train = time.monotonic()
    t_last_ckpt = t_train
    window: dict[str, list[torch.Tensor]] = {}
    t_window, n_window = time.monotonic(), 0
    step = start_step
    stopped_by_time = False
    budget = cfg.max_minutes * 60.0 if cfg.max_minutes > 0 else math.inf
    while step < total:
        batch = next(it)
        lr = _lr_at(cfg, step)
        terms = models.step(batch, step, lr)
        step += 1

        # bookkeeping (rank 0 decides; every rank follows)
        if main:
            for k, v in terms.items():  # stays on the device: no sync per step
                window.setdefault(k, []).append(v.float())
            n_window += 1
        now = time.monotonic()
        elapsed_total = now - t_begin
        reserve = last_val_seconds + 2.0 * last_ckpt_seconds + 5.0
        over_time = elapsed_total + reserve > budget or STOP.is_set()
        time_ckpt = cfg.ckpt_minutes > 0 and now - t_last_ckpt >= cfg.ckpt_minutes * 60.0
        stop, do_ckpt = ddp.broadcast_flags(info, [int(over_time), int(time_ckpt)])
        last = step >= total or bool(stop)

        if main and (cfg.log_every and step % cfg.log_every == 0 or last):
            dt = max(now - t_window, 1e-9)
            record = {
                "kind": "train",
                "step": step,
                "losses": {k: float(torch.stack(v).mean()) for k, v in window.items()},
                "lr": lr,
                "steps_per_s": n_window / dt,
                "samples_per_s": n_window * cfg.batch_size * info.world / dt,
            }
            log.write(record)
            cb.on_step(step, record)
            window, t_window, n_window = {}, now, 0
        elif main:
            cb.on_step(step, {})

        if cfg.val_every and step % cfg.val_every == 0 and not last:
            run_validation(step)
        if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or do_ckpt or last:
            write_checkpoint(step, elapsed_before + time.monotonic() - t_train)
            t_last_ckpt = time.monotonic()
        if stop:
            stopped_by_time = True
            reason = "stop requested" if STOP.is_set() else f"time budget of {cfg.max_minutes:g} min reached"
            say(f"{reason} at step {step}: checkpointed; validating and exporting")
            break

    if step == start_step and state is None:  # zero steps asked: still leave a resumable run
        write_checkpoint(step, 0.0)
    # DDP keeps ranks in lock-step; a digest of every rank's weights proves it (and catches desyncs).
    digests = ddp.gather_objects(info, _param_digest(G))
    if len(set(digests)) > 1:
        say(f"WARNING: the {info.world} ranks ended with different weights: {digests}")
    if main:
        run_validation(step)
    export_path: Path | None = None
    if main:
        export_path = Path(cfg.export_path) if cfg.export_path else run / EXPORT_FILE
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            from .export import save_inference_weights

            save_inference_weights(ema.module, mcfg, export_path, step=step, train_config=cfg)
        log.write({"kind": "export", "step": step, "path": str(export_path)})
        log.write({"kind": "end", "step": step, "stopped_by_time": stopped_by_time, "seconds": round(time.monotonic() - t_begin, 2), "param_sha256_per_rank": digests})
        plot_log(log.read(), run / PLOT_FILE)
    ddp.barrier(info)
    return TrainResult(run, step, last_ckpt_path or latest_checkpoint(run), export_path, last_val, stopped_by_time, digests)
