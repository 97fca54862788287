"""Weights resolution: explicit path, env var, repo default, hub cache, hub download (mocked)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vretouch_cli import weights
from vretouch_cli.errors import WeightsError


@pytest.fixture
def fake_file(tmp_path) -> Path:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"not really weights")
    return path


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # The fake hub below stands in for the network: the real reachability probe must not decide.
    monkeypatch.setattr(weights, "_hub_unreachable", lambda timeout=3.0: None)


class FakeHub:
    """Stands in for huggingface_hub.hf_hub_download: a cache dict and an 'online' flag."""

    def __init__(self, tmp_path: Path, online: bool, cached: bool = False):
        self.tmp_path = tmp_path
        self.online = online
        self.cached = cached
        self.calls: list[tuple[str, str, bool]] = []

    def __call__(self, repo_id, filename, *, revision=None, local_files_only=False, **_):
        self.calls.append((repo_id, filename, local_files_only))
        path = self.tmp_path / "hub" / repo_id.replace("/", "--") / filename
        if local_files_only:
            if self.cached:
                return str(path)
            from huggingface_hub.errors import LocalEntryNotFoundError

            raise LocalEntryNotFoundError("not cached")
        if not self.online:
            raise OSError("network unreachable")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"downloaded")
        self.cached = True
        return str(path)


def test_explicit_file(fake_file):
    assert weights.resolve_weights(fake_file) == fake_file


def test_folder_with_one_file(fake_file):
    assert weights.resolve_weights(fake_file.parent) == fake_file


def test_folder_with_two_files_is_ambiguous(fake_file):
    (fake_file.parent / "other.safetensors").write_bytes(b"x")
    with pytest.raises(WeightsError, match="several"):
        weights.resolve_weights(fake_file.parent)


def test_missing_path_is_one_clear_error(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        weights.resolve_weights(tmp_path / "nope.safetensors")


def test_env_var(monkeypatch, fake_file):
    monkeypatch.setenv(weights.ENV_VAR, str(fake_file))
    assert weights.resolve_weights(None) == fake_file


def test_repo_default_when_present(monkeypatch, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / weights.DEFAULT_FILENAME).write_bytes(b"w")
    monkeypatch.setattr(weights, "repo_weights_dir", lambda: folder)
    assert weights.resolve_weights(None) == folder / weights.DEFAULT_FILENAME


def test_hub_download_then_cache(monkeypatch, tmp_path):
    hub = FakeHub(tmp_path, online=True)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", hub)
    path = weights.resolve_weights("someone/bigger-model:base.safetensors")
    assert path.read_bytes() == b"downloaded"
    assert hub.calls == [("someone/bigger-model", "base.safetensors", True), ("someone/bigger-model", "base.safetensors", False)]
    hub.calls.clear()
    assert weights.resolve_weights("someone/bigger-model:base.safetensors") == path
    assert hub.calls == [("someone/bigger-model", "base.safetensors", True)]  # served from the cache


def test_hub_offline_fails_with_one_actionable_line(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.hf_hub_download", FakeHub(tmp_path, online=False))
    with pytest.raises(WeightsError) as info:
        weights.resolve_weights("someone/bigger-model")
    message = str(info.value)
    assert "\n" not in message and "--weights PATH" in message and "hf download" in message


def test_hf_hub_offline_env_never_touches_network(monkeypatch, tmp_path):
    hub = FakeHub(tmp_path, online=True)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE"):
        weights.resolve_weights("someone/bigger-model")
    assert all(local for _, _, local in hub.calls)


def test_default_sha_mismatch_is_reported(monkeypatch, tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    path = folder / weights.DEFAULT_FILENAME
    path.write_bytes(b"corrupt")
    monkeypatch.setattr(weights, "repo_weights_dir", lambda: folder)
    monkeypatch.setattr(weights, "DEFAULT_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="damaged"):
        weights.verify_default(path)


def test_shipped_default_weights_load_and_match_their_pin():
    """A fresh clone runs without any download: the default file is in weights/ and intact."""
    from vretouch_cli.checkpoint import load_model

    path = weights.resolve_weights(None)
    assert path == weights.repo_weights_dir() / weights.DEFAULT_FILENAME
    weights.verify_default(path)
    model = load_model(path)
    assert model.config.size == 256


def test_unreachable_hub_fails_fast_in_one_line(monkeypatch, tmp_path):
    """Offline without HF_HUB_OFFLINE: one line at once, not half a minute of library retries."""
    hub = FakeHub(tmp_path, online=True)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", hub)
    monkeypatch.setattr(weights, "_hub_unreachable", lambda timeout=3.0: "huggingface.co: Name or service not known")
    with pytest.raises(WeightsError) as info:
        weights.resolve_weights("someone/bigger-model")
    message = str(info.value)
    assert "\n" not in message and "cannot be reached" in message and "--weights PATH" in message
    assert all(local for _, _, local in hub.calls)  # only the cache was asked


def test_packaged_default_comes_first(monkeypatch, tmp_path):
    """An installed wheel finds its own copy (package data) before any weights/ folder."""
    packaged, checkout = tmp_path / "pkg", tmp_path / "weights"
    for folder in (packaged, checkout):
        folder.mkdir()
        (folder / weights.DEFAULT_FILENAME).write_bytes(b"w")
    monkeypatch.setattr(weights, "packaged_weights_dir", lambda: packaged)
    monkeypatch.setattr(weights, "repo_weights_dir", lambda: checkout)
    assert weights.default_weights() == (packaged / weights.DEFAULT_FILENAME, "package data")
    assert weights.resolve_weights(None) == packaged / weights.DEFAULT_FILENAME
    monkeypatch.setattr(weights, "DEFAULT_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="damaged"):  # the pin applies to the packaged copy too
        weights.verify_default(packaged / weights.DEFAULT_FILENAME)
