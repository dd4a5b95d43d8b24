"""metric_features: the cached features (Inception, I3D, identity, motion) of one set of frames.

Three sets exist (the rules' `frames` param: real_test, rendered, driving): a video's real test frames (the
renderer's test split, read from its model.pt: reference of its self-reenactment, and "real target frames" whenever
it is a target), every rendered output, and the driving frames of a cross-identity reenactment (which kind of output
is compared with which: neural_renderer.outputs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from neural_renderer.assets import sha256_file
from neural_renderer.config import build_dataclass
from neural_renderer.fitting.config import GazeConfig, resolved_fit_config
from neural_renderer.metrics.config import MetricsConfig
from neural_renderer.metrics.features import (
    FeatureExtractor,
    MotionModels,
    read_rendered,
    read_test_split,
    read_tracking_frames,
    write_features,
)

log = logging.getLogger(__name__)

SETS = ("real_test", "rendered", "driving")


def run(which: str, inputs: Mapping[str, str], out_h5, *, cfg: dict, motion_cfg: dict, name: str) -> None:
    """One set of frames (`which`, the rules' `frames` param) from the rule's named inputs.

    motion_cfg: the video's `fit:` and `gaze:` sections, so re-extracted motion is fitted as the video was.
    """
    if which not in SETS:
        raise ValueError(f"unknown set of frames {which!r}; expected one of {SETS}")
    models = MotionModels(
        inputs["landmarker"],
        inputs["model"],
        inputs["correspondence"],
        fit=resolved_fit_config(motion_cfg["fit"]),
        gaze=build_dataclass(GazeConfig, motion_cfg["gaze"]),
    )
    common = {"cfg": cfg, "name": name, "models": models}
    if which == "real_test":
        run_real(inputs["tracking"], inputs["renderer"], out_h5, **common)
    elif which == "rendered":
        run_rendered(inputs["rendered"], out_h5, **common)
    else:
        run_driving(inputs["tracking"], inputs["rendered"], out_h5, **common)


def _extract(
    frames: np.ndarray,
    fps: float,
    frame_index: np.ndarray,
    out_h5,
    *,
    source: str,
    name: str,
    source_path,
    cfg: dict,
    models: MotionModels,
) -> None:
    mcfg = build_dataclass(MetricsConfig, cfg)
    extractor = FeatureExtractor(mcfg, models)
    log.info("%s: %d %s frames at %d px", name, len(frames), source, frames.shape[1])
    arrays = extractor(frames, fps)
    write_features(
        out_h5,
        arrays,
        frame_index,
        source=source,
        name=name,
        source_path=source_path,
        source_sha256=sha256_file(source_path),
        cfg=mcfg,
        identity_backend=extractor.identity_backend,
    )


def run_real(tracking_h5, model_pt, out_h5, *, cfg: dict, name: str, models: MotionModels) -> None:
    """Features of a video's real test frames: the renderer's test split, read from its model.pt."""
    idx = read_test_split(model_pt)
    frames, fps = read_tracking_frames(tracking_h5, idx)
    _extract(frames, fps, idx, out_h5, source="real", name=name, source_path=tracking_h5, cfg=cfg, models=models)


def run_rendered(rendered_h5, out_h5, *, cfg: dict, name: str, models: MotionModels) -> None:
    """Features of generated frames."""
    frames, idx, attrs = read_rendered(rendered_h5)
    _extract(
        frames,
        float(attrs["fps"]),
        idx,
        out_h5,
        source="rendered",
        name=name,
        source_path=rendered_h5,
        cfg=cfg,
        models=models,
    )


def run_driving(driver_tracking, rendered_h5, out_h5, *, cfg: dict, name: str, models: MotionModels) -> None:
    """Features of the real driver frames that drove a reenactment (its `frame_index`)."""
    _, idx, _ = read_rendered(rendered_h5)
    frames, fps = read_tracking_frames(driver_tracking, idx)
    _extract(frames, fps, idx, out_h5, source="real", name=name, source_path=driver_tracking, cfg=cfg, models=models)
