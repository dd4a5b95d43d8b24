"""fit: the linear morphable model fitted to the crop-space landmarks of every frame at once (`fit.h5`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.assets import sha256_file
from neural_renderer.device import resolve_device
from neural_renderer.errors import PipelineInputError
from neural_renderer.fitting import FitConfig, FitResult, blendshapes_to_expression, fit_sequence_refined
from neural_renderer.morphable import load_morphable_model
from neural_renderer.stages import correspondence as correspondence_stage
from neural_renderer.storage import provenance, read_attrs, read_stage, write_stage


def fit_config(cfg: dict[str, Any]) -> FitConfig:
    values = {**cfg, "device": str(resolve_device(cfg.get("device", "auto")))}
    try:
        return FitConfig.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise PipelineInputError(None, f"invalid fit configuration: {exc}") from None


def run(
    crop_h5: str | Path,
    track_h5: str | Path,
    model_path: str | Path,
    correspondence_npz: str | Path,
    out_h5: str | Path,
    *,
    cfg: dict[str, Any],
    kind: str = "auto",
) -> FitResult:
    fit_cfg = fit_config(cfg)
    model = load_morphable_model(model_path, kind=kind)
    corr = correspondence_stage.load(correspondence_npz, model_path)
    crop = read_stage(crop_h5, "crop")
    resolution = int(read_attrs(crop_h5)["resolution"])
    prov = provenance(crop_h5)
    valid = crop["valid"]
    if not valid.any():
        raise PipelineInputError(prov["source_path"], "no frame with landmarks to fit")
    init = None
    if fit_cfg.init_from_blendshapes:
        track = read_stage(track_h5, "track")
        init = blendshapes_to_expression(track["blendshapes"], list(track["blendshape_names"]), model.expression_names)
    points = crop["landmarks"][:, corr.mediapipe_idx, :2]
    # The refined fit lets each correspondence slide to a better vertex for this face (within refine_radius):
    # the generic MediaPipe<->model pairs carry a per-face constant offset that otherwise biases the expressions.
    result = fit_sequence_refined(
        points,
        valid,
        model,
        corr.model_vertex,
        resolution,
        fit_cfg,
        init_expression=init,
        point_weights=np.asarray(corr.weight, np.float32),
    )
    write_stage(
        out_h5,
        "fit",
        result.to_arrays(corr),
        **prov,
        stage_config=fit_cfg.to_dict(),
        attrs={"model_name": model.name, "model_sha256": sha256_file(model_path), "resolution": resolution},
    )
    return result
