"""correspondence: MediaPipe landmark <-> morphable model vertex pairs, computed once per model and landmarker
(logic and file format: `morphable/correspondence.py`)."""

from __future__ import annotations

from pathlib import Path

from neural_renderer.morphable import Correspondence, build_correspondence, load_morphable_model, save_correspondence


def run(
    model_path: str | Path, landmarker_path: str | Path, out_npz: str | Path, *, kind: str = "auto"
) -> Correspondence:
    model = load_morphable_model(model_path, kind=kind)
    corr = build_correspondence(model, landmarker_path, dense=True)
    save_correspondence(corr, out_npz, model_path, landmarker_path)
    return corr
