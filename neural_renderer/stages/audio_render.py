"""audio_render: an audio (or video) file from data/audio/ drives an identity (its renderer + audio model).

Outputs: `out_mp4` (the generated frames at the target's fps with the clip's audio muxed in) and `out_h5`
(schema `rendered`, kind "audio", frame_index = 0..T-1, T = round(audio duration * fps)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.audio.config import AudioConfig
from neural_renderer.audio.render import render_audio
from neural_renderer.config import build_dataclass
from neural_renderer.video.ffmpeg_exe import resolve_ffmpeg


def run(
    audio_path: str | Path,
    target_tracking: str | Path,
    renderer_model: str | Path,
    audio_model: str | Path,
    out_mp4: str | Path,
    out_h5: str | Path,
    *,
    cfg: dict[str, Any],
    clip: str,
    target: str,
    ffmpeg: str | None = None,
) -> np.ndarray:
    """`cfg` is the `audio` config section (its `render` subsection applies; features come from the trained model)."""
    acfg = build_dataclass(AudioConfig, cfg or {})
    return render_audio(
        audio_path,
        target_tracking,
        renderer_model,
        audio_model,
        out_mp4,
        out_h5,
        cfg=acfg.render,
        clip=clip,
        target=target,
        ffmpeg=resolve_ffmpeg(ffmpeg),
    )
