"""metric_features: the cached features (Inception, I3D, identity, motion) of one set of frames.

Three sets exist: a video's real test frames (reference of its self-reenactment, and "real target frames" whenever
it is a target), every rendered output, and the driving frames of a cross-identity reenactment.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.assets import sha256_file
from neural_renderer.config import build_dataclass
from neural_renderer.metrics.config import MetricsConfig
from neural_renderer.metrics.features import (
    FeatureExtractor,
    MotionModels,
    read_rendered,
    read_tracking_frames,
    write_features,
)
from neural_renderer.renderer.config import TrainConfig
from neural_renderer.renderer.data import split_counts
from neural_renderer.storage import open_h5

log = logging.getLogger(__name__)


def test_frame_index(tracking_h5: str | Path, renderer_cfg: dict[str, Any]) -> np.ndarray:
    """The renderer's test split (the video's last frames), from the frame count alone (no pixels read)."""
    train = build_dataclass(TrainConfig, renderer_cfg.get("train", {}))  # the renderer's own defaults
    with open_h5(tracking_h5) as f:
        n = int(f["frames"].shape[0])
    _, n_test = split_counts(n, train.train_frames, train.test_frames)
    return np.arange(n - n_test, n, dtype=np.int64)


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


def run_real(tracking_h5, out_h5, *, cfg: dict, renderer_cfg: dict, name: str, models: MotionModels) -> None:
    """Features of a video's real test frames."""
    idx = test_frame_index(tracking_h5, renderer_cfg)
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
