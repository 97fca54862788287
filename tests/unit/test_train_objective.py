"""The CPU training recipe's pieces: balanced losses, the acne model, the camera, the fill, the cache."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from vretouch_cli.face.align import template
from vretouch_cli.model.config import ModelConfig
from vretouch_cli.model.network import VRetouchEr
from vretouch_cli.train.losses import balanced_map_loss, blemish_regions, region_l1, region_mse, soft_dice_loss


def _sparse_gt(seed: int = 0, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(2, 1, size, size)
    for b in range(2):
        for _ in range(4):
            y, x = torch.randint(4, size - 4, (2,), generator=g).tolist()
            m[b, 0, y - 1 : y + 2, x - 1 : x + 2] = 0.8
    return m


def _logits_for(p: torch.Tensor, floor: float = 0.01) -> torch.Tensor:
    q = ((p + floor) / (1 + 2 * floor)).clamp(1e-4, 1 - 1e-4)
    return torch.log(q / (1 - q))


def test_balanced_map_loss_is_not_minimised_by_an_all_zero_map():
    gt = _sparse_gt()
    assert 0 < float((gt > 0).float().mean()) < 0.02  # sparse, like real blemish maps
    zero = balanced_map_loss(_logits_for(torch.zeros_like(gt)), gt)
    right = balanced_map_loss(_logits_for(gt), gt)
    assert float(right) < 0.5 * float(zero)
    # A diffuse blob over the blemishes and their surroundings is worse than the spots themselves.
    blob = torch.nn.functional.max_pool2d(gt, 9, stride=1, padding=4)
    assert float(balanced_map_loss(_logits_for(blob), gt)) > float(right)
    # Plain L1 — the paper's L_imp — prefers the all-zero map to that blob: the collapse.
    assert float((blob - gt).abs().mean()) > float(gt.abs().mean())


def test_soft_dice_and_region_terms():
    gt = _sparse_gt(1)
    assert float(soft_dice_loss(torch.zeros_like(gt), gt)) > 0.9
    # Soft Dice rewards covering the blemish fully (what the composition needs), more than matching
    # the soft ground truth's strength.
    assert float(soft_dice_loss((gt > 0).float(), gt)) < float(soft_dice_loss(gt, gt)) < 0.25
    empty = torch.zeros_like(gt)
    assert float(soft_dice_loss(empty, empty)) == pytest.approx(0.0)  # nothing to find, nothing found
    assert torch.isfinite(balanced_map_loss(torch.zeros_like(gt), empty))
    # present_only (the class heads): a sample without the class does not pull the map to zero;
    # only the samples where it is count, and a batch without it gives a zero that still backprops.
    both = torch.cat([gt[:1], empty[:1]])  # [2, 1, H, W]: the class in sample 0 only
    pred = torch.full_like(both, 0.3, requires_grad=True)
    loss = soft_dice_loss(pred, both, present_only=True)
    assert float(loss.detach()) == pytest.approx(float(soft_dice_loss(pred[:1], gt[:1]).detach()))
    loss.backward()
    assert pred.grad[1].abs().sum() == 0 and pred.grad[0].abs().sum() > 0
    none = soft_dice_loss(pred, torch.zeros_like(both), present_only=True)
    assert float(none.detach()) == 0.0 and none.requires_grad
    pos, region = blemish_regions(gt)
    assert (region >= pos).all() and region.sum() > pos.sum()
    a, b = torch.zeros(2, 3, 64, 64), torch.zeros(2, 3, 64, 64)
    b[:, :, 10:13, 10:13] = 0.3  # a small error inside a small region is not diluted by the image size
    r = torch.zeros(2, 1, 64, 64)
    r[:, :, 10:13, 10:13] = 1
    assert float(region_l1(a, b, r)) == pytest.approx(0.3, rel=1e-5)
    assert float(region_l1(a, b, 1 - r)) == 0.0


def test_region_mse_weighs_a_half_done_core_above_a_haze_of_the_same_l1():
    """--w-spot-l2: the held-out score is PSNR (a mean of squares). One blemish core left at 0.4
    and a haze of 0.1 over four times its area have the same L1 inside the region; the squared
    term scores the core four times higher, so it pushes where PSNR is lost."""
    r = torch.zeros(1, 1, 32, 32)
    r[..., 4:24, 4:24] = 1
    y = torch.zeros(1, 3, 32, 32)
    core, haze = y.clone(), y.clone()
    core[..., 10:12, 10:12] = 0.4  # 4 px
    haze[..., 10:14, 10:14] = 0.1  # 16 px
    assert float(region_l1(core, y, r)) == pytest.approx(float(region_l1(haze, y, r)), rel=1e-5)
    assert float(region_mse(core, y, r)) == pytest.approx(4 * float(region_mse(haze, y, r)), rel=1e-5)
    assert float(region_mse(core, y, r)) == pytest.approx(4 * 0.16 / 400, rel=1e-5)  # per the region's area
    assert float(region_mse(core, y, torch.zeros_like(r))) == 0.0  # empty region


def test_training_target_scale_sets_how_sharp_the_map_is():
    from vretouch_cli.train.losses import gt_imperfection_map

    raw = torch.zeros(1, 3, 8, 8)
    tgt = raw.clone()
    tgt[..., 2, 2] = 8 / 127.5  # an 8-level spot, in the model's [-1, 1] range
    assert float(gt_imperfection_map(raw, tgt, 0.1).max()) == pytest.approx(8 / 255 / 0.1, rel=1e-4)  # partial
    assert float(gt_imperfection_map(raw, tgt, 0.03).max()) == 1.0  # full: the composition replaces it


def test_skin_weight_keeps_spots_and_drops_the_silhouette():
    from vretouch_cli.face.regions import skin_weight

    size = 128
    img = np.empty((size, size, 3), np.uint8)
    img[:] = (60, 160, 90)  # green screen
    face = np.zeros((size, size), np.uint8)
    cv2.ellipse(face, (64, 72), (40, 52), 0, 0, 360, 1, -1)
    img[face > 0] = (205, 160, 135)
    for y, x in ((70, 45), (80, 84), (95, 60)):  # red spots and a dark mark on the cheeks
        cv2.circle(img, (x, y), 2, (175, 95, 90), -1)
    cv2.circle(img, (70, 100), 3, (190, 140, 120), -1)  # a flat brownish mark: correctable (a dark mole is kept, below)
    w = skin_weight(img)
    assert w.shape == (size, size) and w.dtype == np.float32
    assert w[70, 45] > 0.95 and w[80, 84] > 0.95 and w[100, 70] > 0.95  # spots stay correctable
    assert w[5, 5] < 0.01 and w[72, 20] < 0.01  # background
    assert w[72, 24] < 0.5  # right at the silhouette: no correction lands on the edge
    # float crops in the model's range give the same weight
    assert np.allclose(skin_weight(img.astype(np.float32) / 127.5 - 1.0), w, atol=1e-3)
    # no skin-like cheeks to go on: the weight does not cut anything
    assert (skin_weight(np.full((size, size, 3), 30, np.uint8)) == 1).all()


def test_skin_weight_keeps_a_margin_from_the_skin_edge():
    """A shaded cheek turning away from the camera makes a colour edge inside the silhouette that
    the network can read as redness (the demo's cheek strip): no correction lands within a few
    pixels of where the skin ends, full weight a little further in."""
    from vretouch_cli.face.regions import skin_weight

    size = 256
    img = np.empty((size, size, 3), np.uint8)
    img[:] = (60, 160, 90)
    cv2.ellipse(img, (128, 144), (80, 104), 0, 0, 360, (205, 160, 135), -1)
    w = skin_weight(img)
    edge = 128 - 80
    assert w[144, edge + 1] < 0.2 and w[144, edge + 2] < 0.5  # 1 and 2 px inside the silhouette (a 1-px margin gave 0.83 at 2 px)
    # 3 px in: at most a fifth (the margin of S/36 gave 0.63 there, and the demo kept a faint
    # line along its cheek's edge against the green screen)
    assert w[144, edge + 3] < 0.2
    assert w[144, edge + 12] > 0.95


def _mouth_crop(size: int, lip_rgb, spot: bool = True) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """A skin-coloured crop with lips of ``lip_rgb`` around the template's mouth, the lower lip
    reaching below the template's lips ellipse (a smile), and a red spot on the chin →
    (crop, (x, y) on the lower lip, (x, y) of the spot)."""
    from vretouch_cli.face.align import template

    lm = template(size)
    mouth = (lm[3] + lm[4]) / 2
    half = float(lm[4, 0] - lm[3, 0]) / 2
    img = np.empty((size, size, 3), np.uint8)
    img[:] = (205, 160, 135)
    cx, cy = int(round(mouth[0])), int(round(mouth[1]))
    low = int(round(0.32 * (mouth[1] - (lm[0, 1] + lm[1, 1]) / 2)))  # the lower lip's bottom: 0.32 eye-to-mouth
    cv2.ellipse(img, (cx, cy + low // 2), (int(half * 0.8), low // 2 - 4), 0, 0, 360, (235, 232, 225), -1)  # teeth
    cv2.ellipse(img, (cx, cy + low - 5), (int(half), 5), 0, 0, 360, lip_rgb, -1)  # lower lip, 10 px: thinner than the closing
    cv2.ellipse(img, (cx, cy - 3), (int(half * 0.9), 4), 0, 0, 360, lip_rgb, -1)
    spot_xy = (cx + int(half * 0.6), cy + 2 * low)
    if spot:
        cv2.circle(img, spot_xy, 2, (175, 95, 90), -1)
    return img, (cx, cy + low - 5), spot_xy


def test_lips_are_found_whole_and_kept_out_of_the_skin():
    from vretouch_cli.face.paste import retouch_region_mask
    from vretouch_cli.face.regions import skin_weight

    size = 256
    img, (lx, ly), (sx, sy) = _mouth_crop(size, (205, 135, 130))  # Δa* 13 over the skin: within the skin colour test
    w = skin_weight(img)
    region = retouch_region_mask(size)
    # the template alone lets part of a smile's lower lip through; the lip mask takes it out
    assert region[ly, lx] > 0.2
    assert w[ly, lx] < 0.05
    # a red spot on the chin, apart from the lips, stays correctable skin
    assert w[sy, sx] > 0.95
    # lips no redder than the skin (here: skin-coloured): nothing is taken out beyond the template's
    plain, _, _ = _mouth_crop(size, (205, 160, 135), spot=False)
    assert skin_weight(plain)[ly, lx] > 0.95


def _face(size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float32)
    img[:] = (0.78, 0.6, 0.5)
    img += rng.normal(0, 0.015, (size, size, 1)).astype(np.float32)
    return np.clip(img, 0, 1), template(size).astype(np.float32)


def test_acne_model_changes_only_skin_and_reports_classes():
    from vretouch_cli.train.acne import CLASSES, synthesize_acne
    from vretouch_cli.train.blemish import skin_geometry

    clean, lm = _face()
    geo = skin_geometry(clean, lm)
    res = synthesize_acne(clean, np.random.default_rng(3), geo, landmarks=lm, severity=1.0, strength=1.2)
    diff = np.abs(res.raw - clean).max(axis=2) * 255
    skin = geo.skin > 0
    assert (diff[~skin] == 0).all()
    share = float((diff[skin] > 5).mean())
    assert 0.01 < share < 0.25, share
    assert set(res.classes) == set(CLASSES) and res.classes["acne"].max() > 0.5
    assert sum(res.counts.values()) >= 20
    lab_raw = cv2.cvtColor(res.raw, cv2.COLOR_RGB2Lab)
    lab_clean = cv2.cvtColor(clean, cv2.COLOR_RGB2Lab)
    inside = res.alpha > 0.5
    assert (lab_raw[..., 1][inside] - lab_clean[..., 1][inside]).mean() > 1.0  # redder
    none = synthesize_acne(clean, np.random.default_rng(3), geo, severity=0.0)
    assert np.array_equal(none.raw, clean) and none.alpha.max() == 0


def test_dark_tone_darkens_spots_on_dark_skin_and_leaves_light_skin_alone():
    """--cache-dark-tone: on dark skin the same spots come out darker and less red (as acne and its
    marks look there); on light skin nothing changes; the per-class shifts still add up."""
    from vretouch_cli.train.acne import AcneParams, CLASSES, skin_darkness, synthesize_acne, tone_shift
    from vretouch_cli.train.blemish import skin_geometry

    assert skin_darkness(70.0) == 0.0 and skin_darkness(32.0) == 1.0 and 0 < skin_darkness(50.0) < 1
    shift = np.random.default_rng(0).normal(0, 5, (4, 4, 3)).astype(np.float32)
    assert np.array_equal(tone_shift(shift, 0.0, 0.3, 2.0), shift)

    def lab_change(face, params):
        clean, lm = face
        geo = skin_geometry(clean, lm)
        res = synthesize_acne(clean, np.random.default_rng(3), geo, params, lm, severity=1.0, strength=1.2)
        inside = res.alpha > 0.5
        d = cv2.cvtColor(res.raw, cv2.COLOR_RGB2Lab) - cv2.cvtColor(clean, cv2.COLOR_RGB2Lab)
        return res, d[inside].mean(0)

    dark = _face()
    dark = (np.clip(dark[0] * np.array([0.33, 0.25, 0.22], np.float32) / np.array([0.78, 0.6, 0.5], np.float32), 0, 1), dark[1])
    assert skin_geometry(*dark).skin_l < 32
    red, d_red = lab_change(dark, AcneParams())
    toned, d_toned = lab_change(dark, AcneParams(dark_tone=1.0))
    assert np.array_equal(red.alpha, toned.alpha)  # the same spots, drawn before the tone
    assert d_toned[0] < d_red[0] - 1.0 and d_toned[1] < 0.5 * d_red[1], (d_red, d_toned)
    total = sum(toned.shifts[c] for c in CLASSES)
    lab = cv2.cvtColor(dark[0], cv2.COLOR_RGB2Lab)
    lab[..., 0] += total[..., 0] * lab[..., 0]
    lab[..., 1:] += total[..., 1:]
    rendered = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0, 1)
    assert np.abs(rendered - toned.raw).max() < 2e-3  # the class parts add up to what raw shows
    light = _face()
    assert skin_geometry(*light).skin_l > 62
    a, _ = lab_change(light, AcneParams())
    b, _ = lab_change(light, AcneParams(dark_tone=1.0))
    assert np.array_equal(a.raw, b.raw)


def test_camera_keeps_equal_pixels_equal():
    from vretouch_cli.train.photometric import CameraParams, apply_camera

    clean, _ = _face(128)
    a = (clean * 255).astype(np.uint8)
    b = a.copy()
    b[60:63, 60:63] = (200, 60, 60)
    every = CameraParams(1, 1, 1, 1, 1, 1, 1, p_shade=1)
    for seed in range(4):
        ra, rb = apply_camera([a, b], np.random.default_rng(seed), 128, every)
        d = np.abs(ra.astype(int) - rb.astype(int)).max(axis=2)
        assert d[60:63, 60:63].max() > 0
        far = np.ones_like(d, bool)
        far[40:88, 40:88] = False  # blur, resampling and 16×16 JPEG blocks stay local
        assert d[far].max() == 0
        same = apply_camera([a, a], np.random.default_rng(seed), 96, every)
        assert np.array_equal(same[0], same[1]) and same[0].shape == (96, 96, 3)


def test_camera_shading_darkens_a_cheek_smoothly_and_keeps_older_draws():
    from vretouch_cli.train.photometric import CameraParams, _camera, apply_camera

    flat = np.full((128, 128, 3), 160, np.uint8)
    only_shade = CameraParams(0, 0, 0, 0, 0, 0, 0, p_shade=1)
    change = np.zeros((128, 128), np.float32)
    for seed in range(6):
        (out,) = apply_camera([flat], np.random.default_rng(seed), 128, only_shade)
        lum = out.astype(np.float32).mean(axis=2)
        assert lum.min() <= 155  # somewhere the face turns away and darkens …
        assert np.abs(np.diff(lum, axis=1)).max() <= 8  # … smoothly: no spot-like edge
        change += np.abs(lum - 160)
    sides = np.concatenate([change[:, 19:38], change[:, 90:109]], axis=1).mean()
    assert change[:, 58:70].mean() < 0.5 * sides  # on the cheeks and temples, not down the middle
    # Shading is drawn after every other element: a given rng gives the same camera otherwise.
    with_shade = _camera(np.random.default_rng(5), CameraParams(p_shade=1), 128)
    without = _camera(np.random.default_rng(5), CameraParams(p_shade=0), 128)
    assert "shade" in with_shade and {k: v for k, v in with_shade.items() if k != "shade"}.keys() == without.keys()


def test_fill_model_is_exact_where_mask_is_zero_and_fills_holes():
    from vretouch_cli.model.layers import NormConvFill

    fill = NormConvFill(64)
    img = torch.full((1, 3, 64, 64), 0.3)
    img[..., 30:34, 30:34] = -0.8  # a dark spot
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 30:34, 30:34] = 1
    out = fill(img, mask)
    assert torch.allclose(out[..., 31:33, 31:33], torch.tensor(0.3), atol=0.01)  # ≈ 1 level of 255
    cfg = ModelConfig.preset("tiny").replace(size=64, fill="normconv", head_highpass=True, delta=1)
    torch.manual_seed(0)
    model = VRetouchEr(cfg).eval()
    clip = torch.rand(1, 2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        o = model(clip, 0)
    assert o.logits is not None and o.logits.shape == (1, 2, 1, 64, 64)
    keep = o.mask == 0
    assert torch.equal(o.out.expand_as(clip[:, 0])[keep.expand_as(clip[:, 0])], clip[:, 0][keep.expand_as(clip[:, 0])])
    old = ModelConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k not in ("fill", "head_highpass")})
    assert old.fill == "none" and old.head_highpass is False  # files written before these fields


def test_cache_and_patch_clips(tmp_path):
    from vretouch_cli.train.data import flows_from_affines_torch
    from vretouch_cli.train.patches import PatchDataset, PatchParams, build_cache, is_cache

    prep = tmp_path / "prep"
    prep.mkdir()
    items = []
    for i in range(4):
        face, lm = _face(128, seed=i)
        name = f"p{i:03d}_03.jpg"
        cv2.imwrite(str(prep / name), cv2.cvtColor((face * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
        items.append({"file": name, "identity": f"p{i:03d}", "source": name, "score": 1.0, "landmarks": lm.tolist()})
    (prep / "prepared.json").write_text(json.dumps({"format": "vretouch-prepared-1", "size": 128, "template": "ffhq-5pt", "source_fingerprint": "x", "items": items, "skipped": []}))
    from vretouch_cli.train import prepare

    manifest = json.loads((prep / "prepared.json").read_text())
    manifest["format"] = prepare.FORMAT
    (prep / "prepared.json").write_text(json.dumps(manifest))
    meta = build_cache(prep, tmp_path / "cache", size=64, variants=3, val_fraction=0.0, workers=1)
    assert is_cache(tmp_path / "cache") and meta["items"] == 12 and meta["dark_tone"] == 0.0  # what the data is, on record
    ds = PatchDataset(tmp_path / "cache", frames=3, params=PatchParams(patch=32))
    a, b = ds[(0, 7)], ds[(0, 7)]
    assert all(torch.equal(a[k], b[k]) for k in a)  # a pure function of (index, seed)
    assert a["raw"].shape == (3, 3, 32, 32) and a["alpha"].shape == (3, 1, 32, 32)
    # Each pair's change before the camera (--map-target exact) moves and crops with the clip; it
    # is where the blemish is (the footprint), and nothing of the camera's JPEG blocks.
    from vretouch_cli.train.loop import map_ground_truth
    from vretouch_cli.train.config import TrainConfig
    from vretouch_cli.train.patches import load_cache

    _, arrays = load_cache(tmp_path / "cache")
    change, alpha = np.asarray(arrays["change"], np.float32), np.asarray(arrays["alpha"])
    assert arrays["change"].dtype == np.float16 and change.shape == (12, 64, 64) and change.max() > 0.01
    assert change[alpha == 0].max() < 2 / 255  # off the (area-resampled) footprint: nothing
    assert a["change"].shape == (3, 1, 32, 32) and a["change"].dtype == torch.float32
    batch = {k: v[None] for k, v in a.items()}
    exact = map_ground_truth(batch, batch["raw"].float(), batch["target"].float(), TrainConfig(data="x", map_target="exact", gt_map_scale=0.03))
    assert torch.equal(exact, (batch["change"] / 0.03).clamp(0, 1))
    # The crop's affines give the exact flow between the cropped frames (interior pixels).
    flow = flows_from_affines_torch(a["affines"][None], 32)[0, 0]  # frame 1 → frame 0
    f0 = a["target"][0].float()[None]
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    grid = torch.stack([(xs + flow[0]) / 31 * 2 - 1, (ys + flow[1]) / 31 * 2 - 1], -1)[None]
    warped = torch.nn.functional.grid_sample(f0, grid, align_corners=True)[0]
    err = (warped - a["target"][1].float()).abs()[:, 6:-6, 6:-6].mean()
    assert float(err) < 3.0
    # Outline crops: centred on the face ellipse's edge (where silhouettes are), so they hold both
    # the face and what lies outside it.
    from vretouch_cli.face.paste import face_region_mask

    edge = PatchDataset(tmp_path / "cache", frames=1, params=PatchParams(patch=32, spot_centred=0.0, edge_centred=1.0))
    region = face_region_mask(64)
    for seed in range(6):
        item = edge[(seed % 12, seed)]
        aff = item["affines"][0].numpy()  # frame → crop coordinates of the (moved) template
        inv = cv2.invertAffineTransform(aff.astype(np.float64))
        ys, xs = np.mgrid[0:32, 0:32]
        sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
        sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
        inside = cv2.remap(region, sx.astype(np.float32), sy.astype(np.float32), cv2.INTER_LINEAR)
        assert inside.max() > 0.5 and inside.min() < 0.05, seed


def test_temporal_loss_counts_flicker_of_the_correction_not_motion():
    from vretouch_cli.model.layers import warp
    from vretouch_cli.train.losses import temporal_loss

    g = torch.Generator().manual_seed(3)
    y_prev = torch.rand(1, 3, 48, 48, generator=g) * 2 - 1
    flow = torch.zeros(1, 2, 48, 48)
    flow[:, 0] = 1.5  # frame t(x) = frame t−1(x + 1.5): the face moved left by 1.5 px
    y_t = warp(y_prev, flow)
    err = torch.zeros(1, 3, 48, 48)
    err[:, :, 20:24, 20:24] = 0.2  # the same residual error, moving with the face
    region = torch.zeros(1, 1, 48, 48)
    region[:, :, 16:28, 16:28] = 1
    steady = temporal_loss(y_t + warp(err, flow), y_t, y_prev + err, y_prev, flow, region)
    assert float(steady) < 0.02  # only resampling of the residual's edges is left
    # The correction switched off in frame t: the residual appears — that is flicker.
    popping = temporal_loss(y_t + warp(err, flow), y_t, y_prev, y_prev, flow, region)
    assert float(popping) > 5 * float(steady) and float(popping) > 0.02
    # A moving face with perfect outputs is not flicker; nothing selected gives zero, never NaN.
    assert float(temporal_loss(y_t, y_t, y_prev, y_prev, flow, region)) < 1e-5
    assert float(temporal_loss(y_t, y_t, y_prev + err, y_prev, flow, torch.zeros_like(region))) == 0.0
    # The composition maps widen the region: a correction flickering on clean skin counts.
    mask = torch.zeros(1, 1, 48, 48)
    mask[:, :, 2:8, 2:8] = 1
    wrong = torch.zeros(1, 3, 48, 48)
    wrong[:, :, 2:8, 2:8] = 0.3
    assert float(temporal_loss(y_t + wrong, y_t, y_prev, y_prev, flow, region)) == 0.0
    assert float(temporal_loss(y_t + wrong, y_t, y_prev, y_prev, flow, region, mask)) == pytest.approx(0.3 * 36 / (144 + 36), rel=1e-4)


def test_lr_schedule_cosine_to_final_fraction():
    from vretouch_cli.errors import UsageError
    from vretouch_cli.train.config import TrainConfig
    from vretouch_cli.train.loop import _lr_at

    const = TrainConfig(lr=1e-3, steps=100)
    assert _lr_at(const, 0) == _lr_at(const, 99) == 1e-3
    cos = TrainConfig(lr=1e-3, steps=110, lr_warmup=10, lr_final=0.1)
    assert _lr_at(cos, 0) == pytest.approx(1e-4)  # warm-up first
    assert _lr_at(cos, 10) == pytest.approx(1e-3)
    assert _lr_at(cos, 60) == pytest.approx(0.55e-3)  # half-way down the cosine
    assert _lr_at(cos, 110) == pytest.approx(1e-4) and _lr_at(cos, 500) == pytest.approx(1e-4)
    lrs = [_lr_at(cos, s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    with pytest.raises(UsageError, match="lr-final"):
        TrainConfig(lr_final=1.5)


def test_moles_are_kept_and_red_spots_comedones_and_creases_are_not():
    """A professional retoucher keeps moles: the paste leaves a dark, brown, round blob of a
    mole's size alone (skin weight ~0 on it), while a red spot as dark as it, a comedone-sized
    dark dot and a thin dark crease stay the network's call."""
    from vretouch_cli.face.regions import mole_mask, skin_weight

    size = 256
    img = np.empty((size, size, 3), np.uint8)
    img[:] = (60, 160, 90)
    cv2.ellipse(img, (128, 144), (90, 112), 0, 0, 360, (205, 160, 135), -1)
    mole, red, dot, crease = (72, 160), (184, 160), (100, 60), (150, 60)  # (x, y): cheeks and forehead
    cv2.circle(img, mole, 3, (120, 85, 70), -1)  # brown, 7 px across (14 at 512)
    cv2.circle(img, red, 3, (185, 95, 90), -1)  # an inflamed spot, as dark but red
    img[dot[1], dot[0]] = (110, 80, 70)  # a 1-px comedone
    cv2.line(img, (crease[0] - 10, crease[1]), (crease[0] + 10, crease[1]), (120, 85, 70), 1)
    w = skin_weight(img)
    assert w[mole[1], mole[0]] < 0.05 and w[mole[1] + 3, mole[0]] < 0.3  # the mole and its rim are kept
    assert w[mole[1], mole[0] + 12] > 0.95  # the skin beside it is not
    for x, y in (red, dot, crease):
        assert w[y, x] > 0.95, (x, y)
    # moles selected for removal (`--remove all`, `--remove mole`): the paste leaves them to the network
    assert skin_weight(img, keep_moles=False)[mole[1], mole[0]] > 0.95
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2Lab).astype(np.float32)
    lab[..., 0] *= 100.0 / 255.0
    skin = np.zeros((size, size), bool)
    cv2.ellipse(skin.view(np.uint8), (128, 144), (90, 112), 0, 0, 360, 1, -1)
    m = mole_mask(lab, skin)
    assert m.dtype == np.float32 and m.max() <= 1.0 and m[mole[1], mole[0]] > 0.95
    assert (m > 0.05).sum() < 150  # the mole and a rim, nothing else
    assert not mole_mask(lab, np.zeros((size, size), bool)).any()  # no skin: nothing to keep
