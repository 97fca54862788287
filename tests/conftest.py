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


EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def demo_clip() -> Path:
    """The shipped demo clip: a real face, 512×512, 48 frames, no audio (examples/README.md)."""
    return EXAMPLES / "demo_talking.mp4"


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A seeded, untrained `tiny` model (crops of 128 px to keep CPU tests quick), saved as a
    self-describing safetensors file."""
    import torch

    from vretouch_cli.checkpoint import save_model
    from vretouch_cli.model.config import ModelConfig
    from vretouch_cli.model.network import VRetouchEr

    torch.manual_seed(0)
    model = VRetouchEr(ModelConfig.preset("tiny").replace(size=128))
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_model(path, model)
    return path


@pytest.fixture(scope="session")
def micro_weights(tmp_path_factory) -> Path:
    """A seeded, untrained ``tiny`` model with a 64-px face crop (fastest on CPU)."""
    import torch

    from vretouch_cli.checkpoint import save_model
    from vretouch_cli.model.config import ModelConfig
    from vretouch_cli.model.network import VRetouchEr

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny64.safetensors"
    save_model(path, VRetouchEr(ModelConfig.preset("tiny").replace(size=64)))
    return path


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test: the CI machine's two cores are shared, and
    oversubscription is many times slower. Use with ``pytest.mark.usefixtures("one_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
