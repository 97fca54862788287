"""``build_cache`` on a split with no people (``val_fraction=0``, or one identity only): an empty
cache, not a crash."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import write_prepared

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("classes", [False, True])
def test_a_split_without_people_makes_an_empty_cache(tmp_path, classes):
    from vretouch_cli.errors import InputError
    from vretouch_cli.train.patches import PatchDataset, build_cache, cache_items, is_cache, load_cache

    prep = write_prepared(tmp_path / "prep", n=2, size=64)
    meta = build_cache(prep, tmp_path / "val", size=32, variants=2, val_fraction=0.0, workers=1, split="val", classes=classes)
    assert meta["items"] == 0 and meta["identities"] == [] and meta["blemished_share"] == 0.0 and meta["healed_share_mean"] == 0.0
    assert is_cache(tmp_path / "val") and cache_items(tmp_path / "val") == 0
    _, arrays = load_cache(tmp_path / "val")
    assert arrays["raw"].shape == (0, 32, 32, 3) and arrays["alpha"].shape == (0, 32, 32)
    if classes:
        assert arrays["clean"].shape[0] == 0 and arrays["sparse_offsets"].shape[0] == 0
    with pytest.raises(InputError, match="holds no items"):  # training skips it (loop: "no validation")
        PatchDataset(tmp_path / "val", 1)
    assert cache_items(tmp_path / "nothing") == 0
    train = build_cache(prep, tmp_path / "train", size=32, variants=1, val_fraction=0.0, workers=1, classes=classes)
    assert train["items"] == 2 and np.isfinite(train["blemished_share"])
