"""Shared fixtures: ../shared (skipped when absent), GPU marker handling, tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder beside the checkout; skips the test when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (it holds development data; a user's clone does not have it)")
    return SHARED


@pytest.fixture(scope="session")
def shared_videos(shared_dir) -> Path:
    path = shared_dir / "data" / "videos"
    if not path.is_dir():
        pytest.skip("../shared/data/videos is absent")
    return path
