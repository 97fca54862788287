"""Find model weights without surprises.

Order (the first that exists wins):

1. an explicit ``--weights`` value: a file, a folder holding one ``.safetensors`` file, or a
   Hugging Face hub reference ``owner/name`` or ``owner/name:file.safetensors``;
2. the ``VRETOUCH_WEIGHTS`` environment variable (same forms);
3. the shipped default file: package data of an installed wheel or sdist
   (``vretouch_cli/default_weights/``, copied from ``weights/`` at build time and found with
   ``importlib.resources``), else the ``weights/`` folder of a source checkout;
4. the Hugging Face hub cache, then a hub download (``HF_HUB_OFFLINE=1`` is honoured).

Nothing is downloaded unless the first three fail. Offline, a hub reference that is not in
the cache fails at once with one line that says how to get the file (no retries, no library
log lines).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import WeightsError

ENV_VAR = "VRETOUCH_WEIGHTS"
DEFAULT_FILENAME = "vretouch-tiny.safetensors"
# Hub repository for larger models; ``owner/name:file`` selects another file.
DEFAULT_HUB_REPO = "vretouch/vretouch"
# SHA-256 of the shipped default weights, checked on every load of that file.
DEFAULT_SHA256: str | None = "51b8e0e068353eb8394ab5b64fa0dc71cc1507edf2f3dd5322722fc939d85533"


# Folder inside the installed package that holds the shipped weights and their model card
# (built from ``weights/`` by setup.py; ``weights/`` stays the one copy in git).
PACKAGE_WEIGHTS_DIR = "default_weights"


def repo_weights_dir() -> Path:
    """The ``weights/`` folder of a source checkout (beside the package folder)."""
    return Path(__file__).resolve().parent.parent / "weights"


def packaged_weights_dir() -> Path | None:
    """The shipped weights inside an installed wheel, found with ``importlib.resources``; None
    in a source checkout (where :func:`repo_weights_dir` holds them)."""
    from importlib.resources import files

    try:
        folder = Path(str(files(__package__ or "vretouch_cli").joinpath(PACKAGE_WEIGHTS_DIR)))
    except (ModuleNotFoundError, TypeError, ValueError):  # pragma: no cover - a zipped install
        return None
    return folder if folder.is_dir() else None


def default_weights() -> tuple[Path, str] | None:
    """The shipped default weights file and where it was found ("package data" or "source
    checkout"), or None when neither holds it (then the hub is asked)."""
    for folder, where in ((packaged_weights_dir(), "package data"), (repo_weights_dir(), "source checkout")):
        if folder is not None and (folder / DEFAULT_FILENAME).is_file():
            return folder / DEFAULT_FILENAME, where
    return None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _looks_like_hub_ref(spec: str) -> bool:
    if spec.startswith((".", "/", "~")) or spec.endswith(".safetensors") and ":" not in spec:
        return False
    repo = spec.split(":", 1)[0]
    parts = repo.split("/")
    return len(parts) == 2 and all(parts) and not Path(spec).exists()


def _from_local(spec: str) -> Path | None:
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if len(files) == 1:
            return files[0]
        if not files:
            raise WeightsError(f"no .safetensors file in the weights folder {path}")
        names = ", ".join(f.name for f in files)
        raise WeightsError(f"the weights folder {path} holds several files ({names}); name one")
    return None


def hub_download(repo_id: str, filename: str = DEFAULT_FILENAME, revision: str | None = None) -> Path:
    """Return a local path for ``filename`` of hub repo ``repo_id``: the cache first, then a download.

    Raises :class:`WeightsError` with one actionable line when the file is neither cached nor
    downloadable (offline machine, ``HF_HUB_OFFLINE=1``, unknown repository).
    """
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise WeightsError("huggingface-hub is not installed; pass --weights PATH to a local file") from exc

    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, local_files_only=True))
    except Exception:
        pass  # not cached: try the network below
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    how = (
        f"download it on a connected machine with `hf download {repo_id} {filename}` "
        f"(it lands in the hub cache) or pass --weights PATH"
    )
    if offline:
        raise WeightsError(f"weights {repo_id}:{filename} are not in the Hugging Face cache and HF_HUB_OFFLINE is set: {how}")
    unreachable = _hub_unreachable()
    if unreachable:
        raise WeightsError(f"weights {repo_id}:{filename} are not in the Hugging Face cache and the hub cannot be reached ({unreachable}): {how}")
    try:
        with _quiet_hub_logs():
            return Path(hf_hub_download(repo_id, filename, revision=revision))
    except Exception as exc:
        reason = type(exc).__name__
        raise WeightsError(f"could not get weights {repo_id}:{filename} from the Hugging Face hub ({reason}): {how}") from exc


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached, or None when a connection opens (or a proxy decides).

    huggingface_hub retries an unreachable host for about half a minute, logging each try;
    one TCP connection attempt with a short timeout tells the same thing at once.
    """
    import socket
    import threading
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")):
        return None
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    result: list[str | None] = []

    def probe() -> None:  # in a thread: name resolution has no timeout of its own
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as exc:
            result.append(exc.strerror or type(exc).__name__)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not result:
        return f"no answer from {host} within {timeout:g} s"
    return f"{host}: {result[0]}" if result[0] else None


class _quiet_hub_logs:
    """Keep huggingface_hub's retry warnings off the terminal: failures become one line here."""

    def __enter__(self):
        import logging

        self._logger = logging.getLogger("huggingface_hub")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc) -> None:
        self._logger.setLevel(self._level)


def resolve_weights(spec: str | os.PathLike | None = None) -> Path:
    """Turn a user's weights choice (or none) into a local ``.safetensors`` path."""
    for candidate in (spec, os.environ.get(ENV_VAR) or None):
        if candidate is None or str(candidate) == "":
            continue
        text = str(candidate)
        local = _from_local(text)
        if local is not None:
            return local
        if _looks_like_hub_ref(text):
            repo, _, filename = text.partition(":")
            return hub_download(repo, filename or DEFAULT_FILENAME)
        source = "--weights" if candidate is spec else ENV_VAR
        raise WeightsError(f"weights not found: {text} (from {source}); give a .safetensors file or a hub id owner/name")
    default = default_weights()
    if default is not None:
        return default[0]
    return hub_download(DEFAULT_HUB_REPO, DEFAULT_FILENAME)


def verify_default(path: Path) -> None:
    """Check the shipped default file against the SHA-256 pinned above (a corrupt clone fails loudly)."""
    shipped = [folder / DEFAULT_FILENAME for folder in (packaged_weights_dir(), repo_weights_dir()) if folder is not None]
    if DEFAULT_SHA256 is None or path.resolve() not in {p.resolve() for p in shipped}:
        return
    actual = sha256_file(path)
    if actual != DEFAULT_SHA256:
        raise WeightsError(
            f"{path} is damaged (sha256 {actual[:12]}… instead of {DEFAULT_SHA256[:12]}…); "
            "restore it with `git checkout -- weights/` (git-lfs users: `git lfs pull`)"
        )
