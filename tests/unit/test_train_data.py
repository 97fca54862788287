"""Training data: blemish synthesiser, smooth motion with exact flow, identity split, sampler, clips."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from vretouch_cli.train.blemish import face_regions, measure_spot_shift, skin_mask, synthesize_blemishes, template_landmarks
from vretouch_cli.train.data import ClipDataset, StepSampler, discover, flows_from_affines_torch, split_by_identity, to_model_range
from vretouch_cli.train.losses import gt_imperfection_map
from vretouch_cli.train.motion import MotionParams, flows_from_affines, random_motion, warp_frames
from vretouch_cli.train.prepare import identity_of
from _helpers import write_ffhqr

S = 128


def fake_face(size: int = S, seed: int = 0) -> np.ndarray:
    """A skin-coloured oval with darker 'eyes' and 'lips' and pore-like noise, FFHQ-placed, in [0, 1]."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), (0.55, 0.6, 0.65), np.float32)  # grey-blue background
    lm = template_landmarks(size)
    c = ((lm[0] + lm[1]) / 2 + (lm[3] + lm[4]) / 2) / 2
    cv2.ellipse(img, (int(c[0]), int(c[1] - size * 0.04)), (int(size * 0.3), int(size * 0.4)), 0, 0, 360, (0.86, 0.68, 0.58), -1)
    for p in lm[:2]:
        cv2.circle(img, (int(p[0]), int(p[1])), max(2, size // 40), (0.2, 0.15, 0.1), -1)
    cv2.line(img, tuple(int(v) for v in lm[3]), tuple(int(v) for v in lm[4]), (0.7, 0.3, 0.3), max(2, size // 60))
    img += cv2.GaussianBlur(rng.normal(0, 0.01, img.shape).astype(np.float32), (0, 0), 0.7)
    return np.clip(img, 0, 1)


def test_skin_mask_excludes_background_eyes_and_lips():
    face = fake_face()
    lm = template_landmarks(S)
    skin = skin_mask(face, lm)
    assert skin.shape == (S, S) and skin.dtype == np.float32
    assert skin[2, 2] == 0 and skin[-3, -3] == 0  # background
    for p in (lm[0], lm[1], (lm[3] + lm[4]) / 2):  # eyes, mouth
        assert skin[int(p[1]), int(p[0])] < 0.5
    cheek = face_regions(lm, S)["cheek_l"]
    assert (skin * cheek).sum() > 0.5 * cheek.sum()


def test_blemishes_darker_redder_local_and_deterministic():
    face = fake_face()
    a = synthesize_blemishes(face, np.random.default_rng(3), n_spots=120)
    b = synthesize_blemishes(face, np.random.default_rng(3), n_spots=120)
    assert np.array_equal(a.raw, b.raw)
    assert sum(a.counts.values()) > 50
    m = measure_spot_shift(face, a.raw, a.alpha)
    assert m["pixels"] > 100
    assert -8.0 < m["dL"] < -1.5 and 0.5 < m["da"] < 5.0, m
    # Outside the spots the image is bit-identical; spots stay on skin.
    untouched = np.abs(a.raw - face).max(axis=2) == 0
    assert untouched.mean() > 0.9
    assert np.all(a.alpha[a.skin < 1e-6] == 0)
    assert m["changed_gt10"] < 0.05


def test_zero_spots_give_the_clean_image():
    face = fake_face()
    r = synthesize_blemishes(face, np.random.default_rng(0), n_spots=0)
    assert np.array_equal(r.raw, face) and r.alpha.max() == 0


def test_motion_flow_is_exact():
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.random((S, S, 3)).astype(np.float32), (0, 0), 3)
    affines = random_motion(4, S, rng, MotionParams(step_translate=0.02, step_rotate_deg=2.0, step_scale=0.02))
    frames = warp_frames(img, affines, S)
    flows = flows_from_affines(affines, S)
    assert frames.shape == (4, S, S, 3) and flows.shape == (3, 2, S, S)
    ys, xs = np.mgrid[0:S, 0:S].astype(np.float32)
    for k in range(3):
        # frame_{k+1}(x) = frame_k(x + flow_k(x)) (ARCHITECTURE.md convention)
        back = cv2.remap(frames[k], xs + flows[k, 0], ys + flows[k, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        inner = slice(S // 6, -S // 6)
        assert np.abs(back - frames[k + 1])[inner, inner].max() < 0.02
    assert np.abs(flows).max() > 0.5  # it did move


def test_still_motion_has_zero_flow():
    p = MotionParams(step_translate=0, step_rotate_deg=0, step_scale=0, init_translate=0, init_rotate_deg=0, init_scale=0, flip_prob=0)
    affines = random_motion(3, 32, np.random.default_rng(0), p)
    assert np.abs(flows_from_affines(affines, 32)).max() < 1e-9


def test_identity_names_and_person_level_split():
    assert identity_of("001_03.jpg") == "001"
    assert identity_of("frll_london__017_08.jpg") == "frll_london__017"
    assert identity_of("003f.jpg") == "003f"
    assert identity_of("00042.png") == "00042"
    ids = [f"p{i:03d}" for i in range(50)]
    train, val = split_by_identity(ids + ids, 0.2)
    assert train.isdisjoint(val) and train | val == set(ids)
    assert 4 <= len(val) <= 18
    assert split_by_identity(list(reversed(ids)), 0.2) == (train, val)  # order independent
    tr2, va2 = split_by_identity(["a", "b"], 0.2)
    assert len(tr2) == 1 and len(va2) == 1


def test_step_sampler_resumes_and_shards():
    full = StepSampler(7, 3, seed=5, start_step=0)
    it = iter(full)
    seq = [next(it) for _ in range(3 * 10)]
    resumed = StepSampler(7, 3, seed=5, start_step=4)
    it2 = iter(resumed)
    assert [next(it2) for _ in range(3 * 6)] == seq[12:]
    assert full.keys_for_step(4) == seq[12:15]
    r0 = StepSampler(8, 2, seed=0, rank=0, world=2).keys_for_step(0)
    r1 = StepSampler(8, 2, seed=0, rank=1, world=2).keys_for_step(0)
    assert {k[0] for k in r0}.isdisjoint({k[0] for k in r1})
    assert {k[1] for k in r0}.isdisjoint({k[1] for k in r1})


def test_ffhqr_clips(tmp_path):
    split = discover(write_ffhqr(tmp_path / "d"))
    assert split.mode == "ffhqr" and len(split.train) == 4 and len(split.val) == 2
    ds = ClipDataset(split.train, 48, 3)
    a, b = ds[(1, 99)], ds[(1, 99)]
    assert a["raw"].shape == (3, 3, 48, 48) and a["target"].shape == (3, 3, 48, 48)
    assert a["raw"].dtype == torch.uint8 and a["alpha"].shape == (3, 1, 48, 48)
    assert a["affines"].shape == (3, 2, 3)
    for k in a:
        assert torch.equal(a[k], b[k])
    x = to_model_range(a["raw"])
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert not torch.equal(ds[(1, 100)]["raw"], a["raw"])  # the seed changes the motion
    # the pair's difference survives the motion: M_gt is non-zero somewhere, zero almost everywhere
    m = gt_imperfection_map(x, to_model_range(a["target"]))
    assert 0 < (m > 0).float().mean() < 0.2


def test_device_flows_match_numpy():
    rng = np.random.default_rng(4)
    affines = np.stack([random_motion(4, 40, rng, MotionParams(step_translate=0.03, step_rotate_deg=3)) for _ in range(2)])
    ref = np.stack([flows_from_affines(a, 40) for a in affines])
    got = flows_from_affines_torch(torch.from_numpy(affines), 40).numpy()
    assert got.shape == (2, 3, 2, 40, 40)
    assert np.abs(got - ref).max() < 1e-3


def test_ffhqr_without_test_split_splits_by_name(tmp_path):
    root = write_ffhqr(tmp_path / "d", n_train=10, n_test=0)
    split = discover(root, val_fraction=0.3)
    names = {s.identity for s in split.train} | {s.identity for s in split.val}
    assert len(names) == 10 and split.val and split.train

