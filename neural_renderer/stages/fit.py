"""fit: the linear morphable model fitted to the crop-space landmarks of every frame at once (`fit.h5`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from neural_renderer.assets import sha256_file
from neural_renderer.errors import PipelineInputError
from neural_renderer.fitting import FitResult, fit_tracked_landmarks, resolved_fit_config
from neural_renderer.morphable import load_correspondence, load_morphable_model
from neural_renderer.storage import provenance, read_attrs, read_stage, write_stage

log = logging.getLogger(__name__)


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
    fit_cfg = resolved_fit_config(cfg)
    model = load_morphable_model(model_path, kind=kind)
    corr = load_correspondence(correspondence_npz, model_path)
    crop = read_stage(crop_h5, "crop")
    resolution = int(read_attrs(crop_h5)["resolution"])
    prov = provenance(crop_h5)
    valid = crop["valid"]
    if not valid.any():
        raise PipelineInputError(prov["source_path"], "no frame with landmarks to fit")
    track = read_stage(track_h5, "track") if fit_cfg.init_from_blendshapes else {}
    result = fit_tracked_landmarks(
        crop["landmarks"],
        valid,
        model,
        corr,
        resolution,
        fit_cfg,
        track.get("blendshapes"),
        track.get("blendshape_names"),
    )
    if result.landmarks_68 is None:
        log.warning("%s has no 68-point landmark embedding: fit.h5 gets no landmarks_68", model.name)
    write_stage(
        out_h5,
        "fit",
        result.to_arrays(corr),
        **prov,
        stage_config=fit_cfg.to_dict(),
        attrs={"model_name": model.name, "model_sha256": sha256_file(model_path), "resolution": resolution},
    )
    return result
