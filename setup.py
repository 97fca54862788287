"""Build hook: ship the default weights and their model card inside the package.

``weights/`` stays the one copy in git; a wheel (and a wheel built from the sdist) carries
``weights/*.safetensors`` and ``weights/README.md`` as ``vretouch_cli/default_weights/``,
where :func:`vretouch_cli.weights.packaged_weights_dir` finds them with importlib.resources.
Everything else is configured in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

WEIGHTS = Path(__file__).resolve().parent / "weights"
PACKAGE_WEIGHTS_DIR = "default_weights"  # = vretouch_cli.weights.PACKAGE_WEIGHTS_DIR


def shipped_weights() -> list[Path]:
    files = sorted(WEIGHTS.glob("*.safetensors"))
    card = WEIGHTS / "README.md"
    return files + ([card] if card.is_file() else [])


class BuildWithWeights(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads weights/ of the checkout directly
        target = Path(self.build_lib) / "vretouch_cli" / PACKAGE_WEIGHTS_DIR
        self.mkpath(str(target))
        for path in shipped_weights():
            self.copy_file(str(path), str(target / path.name))


setup(cmdclass={"build_py": BuildWithWeights})
