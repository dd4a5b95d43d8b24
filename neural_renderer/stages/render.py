"""render: self-reenactment of the test frames (mp4 with the source's audio, frames HDF5, GT | render mp4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.config import build_dataclass
from neural_renderer.errors import PipelineInputError
from neural_renderer.renderer.config import RendererConfig
from neural_renderer.renderer.data import load_tracking
from neural_renderer.renderer.render import PortraitRenderer, render_test_frames
from neural_renderer.video.ffmpeg_exe import resolve_ffmpeg
from neural_renderer.video.mp4 import has_audio


def run(
    tracking_h5: str | Path,
    model: str | Path,
    out_mp4: str | Path,
    out_h5: str | Path,
    out_side_by_side: str | Path | None,
    *,
    cfg: dict[str, Any],
    probe_json: str | Path | None = None,
    raw_video: str | Path | None = None,
    ffmpeg: str | None = None,
    video: str | None = None,
):
    rcfg = build_dataclass(RendererConfig, cfg)
    t = rcfg.train
    renderer = PortraitRenderer(model, rcfg.render.device, rcfg.render.test_latent)
    data = load_tracking(  # the training job's frame cache (beside the model) when the frames were streamed
        tracking_h5,
        t.train_frames,
        t.test_frames,
        t.min_train_frames,
        renderer.resolution,
        cache_dir=Path(model).parent,
        in_memory_mb=t.frames_in_memory_mb,
    )
    if not np.array_equal(renderer.test_idx, data.test_idx):
        raise PipelineInputError(
            model,
            f"model was trained with test frames {renderer.test_idx[[0, -1]]}, "
            f"config gives {data.test_idx[[0, -1]]}: retrain",
        )
    audio = Path(raw_video) if raw_video and has_audio(probe_json) else None
    return render_test_frames(
        data,
        renderer,
        Path(out_mp4),
        Path(out_h5),
        Path(out_side_by_side) if out_side_by_side and rcfg.render.side_by_side else None,
        ffmpeg=resolve_ffmpeg(ffmpeg),
        audio_source=audio,
        crf=rcfg.render.crf,
        video=video or Path(tracking_h5).parent.name,
    )
