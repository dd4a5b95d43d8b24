"""Typed reenactment configuration (defaults live here; `config.schema.yaml` $defs/reenact mirrors the fields)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

MODES = ("absolute", "relative")


@dataclass(frozen=True)
class ReenactConfig:
    # workflow key: (driver, target) pairs to render, e.g. ({"driver": "d0", "target": "d6"},); both videos in raw_dir
    pairs: tuple[dict[str, str], ...] = ()
    # absolute: the driver's coefficients as they are | relative: driver - driver neutral + target neutral
    expression: str = "relative"
    # Per-coefficient "neutral" = this percentile over the valid frames. ARKit coefficients are one-sided activations
    # (0 = at rest), and a talking video has its mouth open much of the time, so the median is not the rest pose
    # (median jawOpen of speech is > 0); a low percentile is the rest value while ignoring a few tracking outliers.
    neutral_percentile: float = 10.0
    pose: str = "relative"  # relative: the driver's motion about its mean pose, applied to the target's mean | absolute
    gaze: str = "relative"  # relative: target mean + driver deviation | absolute
    smoothing_sigma: float = 0.0  # Gaussian temporal smoothing of the transferred parameters (frames; 0 = off)
    max_frames: int = 0  # render the first max_frames driver frames (0 = all)
    batch_size: int = 8
    side_by_side: bool = True  # mp4: driver crop | reenacted (False: reenacted only)
    test_latent: str | None = (
        None  # renderer latent code: mean | first | zero; null = the renderer's render.test_latent
    )
    crf: int = 18
    device: str = "auto"  # auto | cpu | cuda

    def __post_init__(self) -> None:
        for name in ("expression", "pose", "gaze"):
            if getattr(self, name) not in MODES:
                raise ValueError(f"{name} must be one of {MODES}, got {getattr(self, name)!r}")
        if not 0.0 <= self.neutral_percentile <= 100.0:
            raise ValueError(f"neutral_percentile must be in [0, 100], got {self.neutral_percentile}")
        if self.smoothing_sigma < 0:
            raise ValueError(f"smoothing_sigma must be >= 0, got {self.smoothing_sigma}")
        if self.max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {self.max_frames}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.test_latent not in (None, "mean", "first", "zero"):
            raise ValueError(f"test_latent must be mean, first, zero or null, got {self.test_latent!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
