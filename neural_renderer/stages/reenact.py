"""reenact: cross-identity reenactment (driver video's motion -> target identity's trained renderer).

Outputs: `out_mp4` (driver crop | reenacted side by side, or the reenacted frames only when
`side_by_side: false`; with the driver's audio when its probe says it has any) and `out_h5` (schema `rendered`,
kind "cross", frame_index = driver frame indices).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.config import build_dataclass
from neural_renderer.reenact.config import ReenactConfig
from neural_renderer.reenact.render import reenact
from neural_renderer.video.ffmpeg_exe import resolve_ffmpeg
from neural_renderer.video.mp4 import has_audio


def run(
    driver_tracking: str | Path,
    target_tracking: str | Path,
    target_model: str | Path,
    out_mp4: str | Path,
    out_h5: str | Path,
    *,
    cfg: dict[str, Any],
    driver: str,
    target: str,
    driver_video: str | Path | None = None,
    driver_probe: str | Path | None = None,
    ffmpeg: str | None = None,
) -> np.ndarray:
    """`cfg` is the `reenact` config section (see ReenactConfig). Returns the reenacted frames."""
    rcfg = build_dataclass(ReenactConfig, cfg or {})
    audio = Path(driver_video) if driver_video and has_audio(driver_probe) else None
    return reenact(
        driver_tracking,
        target_tracking,
        target_model,
        out_mp4,
        out_h5,
        cfg=rcfg,
        driver=driver,
        target=target,
        ffmpeg=resolve_ffmpeg(ffmpeg),
        audio=audio,
    )
