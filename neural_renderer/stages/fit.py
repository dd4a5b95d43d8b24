"""fit: the linear morphable model fitted to the crop-space landmarks of every frame at once (`fit.h5`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from neural_renderer.assets import sha256_file
from neural_renderer.errors import PipelineInputError
from neural_renderer.fitting import FitResult, fit_tracked_landmarks, resolved_fit_config
from neural_renderer.morphable import load_correspondence, load_morphable_model
from neural_renderer.storage import open_h5, provenance, read_attrs, read_stage, write_stage

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
    resolution = int(read_attrs(crop_h5)["resolution"])
    prov = provenance(crop_h5)
    valid = read_stage(crop_h5, "crop", names=["valid"])["valid"]
    if not valid.any():
        raise PipelineInputError(prov["source_path"], "no frame with landmarks to fit")
    names = ["blendshapes", "blendshape_names"] if fit_cfg.init_from_blendshapes else []
    track = read_stage(track_h5, "track", names=names)  # not its landmarks: a long video's would be held twice
    with open_h5(crop_h5) as f:  # the landmarks are read a chunk of frames at a time
        result = fit_tracked_landmarks(
            f["landmarks"],
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
