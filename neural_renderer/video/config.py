"""Ingest options (`ingest:` in config.yaml): the frame timeline of each video."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class IngestConfig:
    """fps: resample every video to this constant rate (null: constant-rate videos keep their own frames; variable
    frame rate videos are resampled to their nominal rate). allow_partial: a video damaged mid-stream keeps the
    frames before the damage (and QC says so) instead of failing."""

    fps: float | None = None
    allow_partial: bool = False

    def __post_init__(self) -> None:
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"ingest.fps must be positive or null, got {self.fps}")
