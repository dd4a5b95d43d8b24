"""train_renderer: a per-identity neural renderer from `tracking.h5` (resumes from its checkpoint directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neural_renderer.config import build_dataclass
from neural_renderer.renderer.config import RendererConfig
from neural_renderer.renderer.data import load_tracking
from neural_renderer.renderer.train import TrainResult, train


def run(tracking_h5: str | Path, out_model: str | Path, *, cfg: dict[str, Any], work_dir: str | Path | None = None, hook=None) -> TrainResult:
    """`work_dir` (default: `<model dir>/`) holds checkpoints/, losses.jsonl, samples/: not Snakemake outputs."""
    rcfg = build_dataclass(RendererConfig, cfg)
    t = rcfg.train
    data = load_tracking(tracking_h5, t.train_frames, t.test_frames, t.min_train_frames)
    return train(data, rcfg, out_model, work_dir or Path(out_model).parent, hook=hook)
