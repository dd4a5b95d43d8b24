"""correspondence: MediaPipe landmark <-> morphable model vertex pairs, computed once per model and landmarker."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neural_renderer.assets import sha256_file
from neural_renderer.errors import PipelineInputError
from neural_renderer.morphable import Correspondence, build_correspondence, load_morphable_model
from neural_renderer.storage import atomic_path


def run(
    model_path: str | Path, landmarker_path: str | Path, out_npz: str | Path, *, kind: str = "auto"
) -> Correspondence:
    model = load_morphable_model(model_path, kind=kind)
    corr = build_correspondence(model, landmarker_path, dense=True)
    with atomic_path(out_npz) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            mediapipe_idx=np.asarray(corr.mediapipe_idx, np.int32),
            model_vertex=np.asarray(corr.model_vertex, np.int32),
            weight=np.asarray(corr.weight, np.float32),
            model_sha256=sha256_file(model_path),
            landmarker_sha256=sha256_file(landmarker_path),
        )
    return corr


def load(path: str | Path, model_path: str | Path | None = None) -> Correspondence:
    """Load saved correspondences; refuse them if they were built for a different model file."""
    try:
        with np.load(path) as data:
            corr = Correspondence(
                mediapipe_idx=data["mediapipe_idx"], model_vertex=data["model_vertex"], weight=data["weight"]
            )
            built_for = str(data["model_sha256"])
    except (OSError, KeyError, ValueError) as exc:
        raise PipelineInputError(path, f"unreadable correspondence file ({exc})") from None
    if model_path is not None and sha256_file(model_path) != built_for:
        raise PipelineInputError(path, f"built for another morphable model than {model_path}; rebuild it")
    return corr
