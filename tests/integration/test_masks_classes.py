"""Class heads through the pipeline and ``vretouch masks`` (issue 11): per-class maps, the
colour-coded overlay with its legend, and the selection reaching the model.

The model is a seeded ``tiny`` model at S = 64 with class heads whose output biases are set so
that the temporary classes' maps are exactly 0 and the mole map is nearly 1 everywhere: what is
kept and what is removed is then known without training.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from _helpers import cli
from vretouch_cli.classes import CLASSES
from vretouch_cli.masks import CLASS_COLOURS, OVERLAY_OPACITY, class_overlay_image
from vretouch_cli.pipeline import open_stream

MAP_RE = re.compile(r"^frame_(\d{6})_face_(\d{3})\.png$")
FRAMES = 4


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def class_weights(tmp_path_factory) -> Path:
    """Class heads: acne, redness, marks maps exactly 0 (σ underflows the ε floor); mole ≈ 1; freckle small."""
    import torch

    from vretouch_cli.checkpoint import save_model
    from vretouch_cli.model.config import ModelConfig
    from vretouch_cli.model.network import VRetouchEr

    torch.manual_seed(0)
    model = VRetouchEr(ModelConfig.preset("tiny").replace(size=64, classes=CLASSES))
    with torch.no_grad():
        model.mask_head.out.weight.zero_()
        model.mask_head.out.bias.copy_(torch.tensor([-40.0, -40.0, -40.0, 8.0, -1.0]))
    path = tmp_path_factory.mktemp("weights") / "classes64.safetensors"
    save_model(path, model)
    return path


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory, demo_clip) -> Path:
    from vretouch_cli.video import open_source
    from vretouch_cli.video.testclips import write_test_video

    with open_source(demo_clip) as src:
        frames = [f.image for f, _ in zip(src, range(FRAMES))]
    return write_test_video(tmp_path_factory.mktemp("clip") / "face.mp4", frames, fps=25)


def _frames(clip, weights, **kwargs):
    stream = open_stream(clip, weights=weights, device="cpu", **kwargs)
    try:
        results = list(stream)
    finally:
        stream.source.close()
    return results, stream


# -- the selection reaches the model --------------------------------------------------------------------------
def test_kept_classes_stay_bit_exact_and_removed_ones_change(face_clip, class_weights):
    results, stream = _frames(face_clip, class_weights)  # default: the temporary classes, whose maps are 0 here
    assert stream.classes == CLASSES and stream.select == [1.0, 1.0, 1.0, 0.0, 0.0] and stream.strength == 1.0
    assert stream.keep_moles  # the paste keeps moles as found unless they are to be removed
    assert stream.notes == []
    assert all(r.faces for r in results)
    for r in results:
        assert np.array_equal(r.retouched, r.frame.image)  # the mole-only map is kept: nothing changes
        face = r.faces[0]
        assert face.class_crops.shape == (len(CLASSES), 64, 64)
        assert float(face.class_crops[3].min()) > 0.99 and float(face.class_crops[:3].max()) == 0.0
        assert float(face.mask_crop.max()) == 0.0
    removed, stream = _frames(face_clip, class_weights, remove="all", strength="mole=0.5")
    assert stream.select == [1.0, 1.0, 1.0, 0.5, 1.0] and not stream.keep_moles
    assert any(not np.array_equal(r.retouched, r.frame.image) for r in removed)
    assert all(abs(float(r.faces[0].mask_crop.max()) - 0.5) < 0.01 for r in removed)  # max_c(select_c · m_c)


# -- the overlay ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_class_overlay_colours_and_legend(dtype):
    vmax = 255 if dtype == np.uint8 else 65535
    frame = np.full((240, 320, 3), vmax // 2, dtype)
    maps = np.zeros((len(CLASSES), 240, 320), np.float32)
    maps[3, 100:110, 150:160] = 1.0  # a mole
    maps[0, 100:110, 170:180] = 0.4  # acne, over a weaker freckle
    maps[4, 100:110, 170:180] = 0.2
    out = class_overlay_image(frame, maps, CLASSES, kept=("mole", "freckle"))
    assert out.dtype == frame.dtype and out.shape == frame.shape
    scale = 257.0 if dtype == np.uint16 else 1.0

    def blend(colour, alpha):
        return np.rint(frame[0, 0] * (1 - alpha) + np.array(colour) * scale * alpha)

    assert np.array_equal(out[105, 155], blend(CLASS_COLOURS["mole"], OVERLAY_OPACITY))
    assert np.array_equal(out[105, 175], blend(CLASS_COLOURS["acne"], OVERLAY_OPACITY * 0.4))  # the strongest class
    assert np.array_equal(out[:, 120:140], frame[:, 120:140]) and np.array_equal(out[120:, :140], frame[120:, :140])  # no class, no legend: unchanged
    legend = out[:120, :120]
    assert not np.array_equal(legend, frame[:120, :120])  # the legend is drawn in the corner
    for name in CLASSES:  # every class's swatch is there
        colour = np.array(CLASS_COLOURS[name]) * scale
        assert np.any(np.all(np.abs(legend.astype(float) - colour) < 1.0, axis=-1)), name
    with pytest.raises(ValueError):
        class_overlay_image(frame, maps[:2], CLASSES)


# -- vretouch masks ---------------------------------------------------------------------------------------------------
def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_masks_writes_one_map_per_class_and_the_class_overlay(tmp_path, face_clip, class_weights, micro_weights, capsys):
    from vretouch_cli.video.testclips import decode_frames

    out = tmp_path / "masks"
    args = ["masks", face_clip, "-o", out, "--device", "cpu", "--remove", "all", "--keep", "freckle"]
    assert cli([*args, "--weights", class_weights]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "note:" not in err and "one per class in acne/, redness/, marks/, mole/, freckle/" in err.replace("\n", " ")
    assert _names(out) == ["mask.mp4", "overlay.mp4", "overlay_classes.mp4"]
    combined = _names(out / "maps")
    assert len(combined) == FRAMES and all(MAP_RE.match(n) for n in combined)
    assert sorted(p.name for p in (out / "maps").iterdir() if p.is_dir()) == sorted(CLASSES)
    for c in CLASSES:
        assert _names(out / "maps" / c) == combined, c
    mole = cv2.imread(str(out / "maps" / "mole" / combined[1]), cv2.IMREAD_UNCHANGED)
    acne = cv2.imread(str(out / "maps" / "acne" / combined[1]), cv2.IMREAD_UNCHANGED)
    union = cv2.imread(str(out / "maps" / combined[1]), cv2.IMREAD_UNCHANGED)
    assert mole.max() >= 250 and acne.max() == 0
    assert np.array_equal(union, mole)  # mole selected at 1, the only class with a map
    overlay = decode_frames(out / "overlay_classes.mp4")
    assert len(overlay) == FRAMES
    # Rerun with weights without class heads: exactly today's outputs, nothing stale left.
    assert cli(["masks", face_clip, "-o", out, "--device", "cpu", "--weights", micro_weights, "--overwrite", "-q"]) == 0
    assert _names(out) == ["mask.mp4", "overlay.mp4"]
    assert [p.name for p in (out / "maps").iterdir() if p.is_dir()] == []
    assert len(_names(out / "maps")) == FRAMES


def test_masks_of_an_image_with_class_heads(tmp_path, face_clip, class_weights):
    from vretouch_cli.masks import export_masks
    from vretouch_cli.video.testclips import decode_frames

    image = tmp_path / "face.png"
    cv2.imwrite(str(image), cv2.cvtColor(decode_frames(face_clip)[0], cv2.COLOR_RGB2BGR))
    report = export_masks(image, tmp_path / "m", weights=class_weights, device="cpu", keep="mole")
    assert report.classes == CLASSES and report.notes == []
    assert _names(tmp_path / "m") == ["mask.png", "overlay.png", "overlay_classes.png"]
    for c in CLASSES:
        assert len(_names(tmp_path / "m" / "maps" / c)) == 1
    assert [p.name for p in report.videos] == ["mask.png", "overlay.png", "overlay_classes.png"]
