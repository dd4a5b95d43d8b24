"""gaze: per-frame gaze from the crop-space iris landmarks, the fitted head pose and the blink scores (`gaze.h5`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neural_renderer.config import build_dataclass
from neural_renderer.errors import PipelineInputError
from neural_renderer.fitting import GazeConfig, GazeResult, blink_scores, gaze_from_fit
from neural_renderer.morphable import load_morphable_model
from neural_renderer.storage import provenance, read_stage, write_stage


def run(
    crop_h5: str | Path,
    fit_h5: str | Path,
    model_path: str | Path,
    out_h5: str | Path,
    *,
    cfg: dict[str, Any],
    kind: str = "auto",
    track_h5: str | Path | None = None,
) -> GazeResult:
    """track_h5: the blendshapes for the blink test (None: no blink test)."""
    gaze_cfg = build_dataclass(GazeConfig, cfg)
    crop = read_stage(crop_h5, "crop")
    fit = read_stage(fit_h5, "fit")
    model = load_morphable_model(model_path, kind=kind)
    blink = None
    if track_h5 is not None:
        track = read_stage(track_h5, "track")
        blink = blink_scores(track["blendshapes"], [str(n) for n in track["blendshape_names"]])
    try:
        result = gaze_from_fit(crop["landmarks"], fit, model, gaze_cfg, valid=crop["valid"], blink_score=blink)
    except PipelineInputError as exc:
        raise PipelineInputError(model_path, exc.reason) from None
    write_stage(out_h5, "gaze", result.to_arrays(), **provenance(fit_h5), stage_config=gaze_cfg.to_dict())
    return result
