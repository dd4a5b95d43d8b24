"""train_renderer: a per-identity neural renderer from `tracking.h5` (resumes from its checkpoint directory).

The preset (auto | seed | preview) is resolved here, where the job runs (a SLURM compute node may have the GPU that
the login node lacks), and stored in the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neural_renderer.renderer.config import resolve_renderer_config
from neural_renderer.renderer.data import load_tracking
from neural_renderer.renderer.train import TrainResult, train


def run(
    tracking_h5: str | Path,
    out_model: str | Path,
    *,
    cfg: dict[str, Any],
    work_dir: str | Path | None = None,
    hook=None,
) -> TrainResult:
    """`work_dir` (default: `<model dir>/`) holds checkpoints/, losses.jsonl, samples/ and the report figures."""
    rcfg, placement = resolve_renderer_config(cfg)
    t = rcfg.train
    work_dir = Path(work_dir or Path(out_model).parent)
    data = load_tracking(
        tracking_h5,
        t.train_frames,
        t.test_frames,
        t.min_train_frames,
        rcfg.model.resolution,
        cache_dir=work_dir,
        in_memory_mb=t.frames_in_memory_mb,
    )
    return train(data, rcfg, out_model, work_dir, placement, hook=hook)
