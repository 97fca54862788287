"""Installed from a wheel, away from any source checkout, vretouch has its default model (issue 12).

Builds the wheel offline (``pip wheel --no-deps --no-build-isolation``), installs it with
``--no-deps`` into a fresh virtual environment that sees this environment's dependencies
through a ``.pth`` line, and retouches a face image from a temporary folder with
``HF_HUB_OFFLINE=1``: the default weights must come from the package data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, **kwargs)
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_wheel_carries_the_default_model_and_runs_offline(tmp_path, demo_clip):
    pytest.importorskip("setuptools")
    from vretouch_cli.weights import DEFAULT_FILENAME

    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, REPO])
    (wheel,) = wheels.glob("vretouch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert f"vretouch_cli/default_weights/{DEFAULT_FILENAME}" in names
    assert "vretouch_cli/default_weights/README.md" in names
    assert not [n for n in names if n.startswith(("tests/", "weights/", "benchmarks/"))]
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB, {len(names)} files")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # The dependencies (torch, av, …) come from this environment; vretouch itself only from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", wheel])

    import cv2

    from vretouch_cli.video.testclips import decode_frames

    work = tmp_path / "elsewhere"
    work.mkdir()
    cv2.imwrite(str(work / "face.png"), cv2.cvtColor(decode_frames(demo_clip)[0], cv2.COLOR_RGB2BGR))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VRETOUCH_WEIGHTS")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    where = _run([py, "-c", "import vretouch_cli; print(vretouch_cli.__file__)"], cwd=work, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # not the source checkout
    vretouch = venv / "bin" / "vretouch"
    info = _run([vretouch, "info", "--preset", "tiny"], cwd=work, env=env).stdout
    assert f"default weights: {DEFAULT_FILENAME} (package data" in info, info
    _run([vretouch, "run", "face.png", "-o", "out.png", "--device", "cpu", "-q"], cwd=work, env=env)
    assert (work / "out.png").stat().st_size > 0
    assert _run([vretouch, "--version"], cwd=work, env=env).stdout.startswith("vretouch ")
