"""Tracking parameters (the `track:` section of the workflow config), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

FACE_CHOICES: tuple[str, ...] = ("largest", "centre")


@dataclass(frozen=True)
class TrackConfig:
    """MediaPipe FaceLandmarker's thresholds, which face to follow, and the mirror pass.

    The three confidences are MediaPipe's own options (probabilities in [0, 1]). `mirror_average` tracks every frame
    twice, as is and mirrored, and averages the un-mirrored second result in: MediaPipe is not mirror-symmetric, and
    the average has no left/right bias by construction, at twice the tracking time (`tracking/mirror.py`).
    """

    face: str = "largest"  # largest | centre: the face tracked when several are visible (kept across frames)
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    mirror_average: bool = True

    def __post_init__(self) -> None:
        if self.face not in FACE_CHOICES:
            raise ValueError(f"face must be one of {FACE_CHOICES}, got {self.face!r}")
        for name in ("min_detection_confidence", "min_presence_confidence", "min_tracking_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")

    @property
    def confidences(self) -> tuple[float, float, float]:
        """(detection, presence, tracking), the order FaceLandmarkerOptions takes them in."""
        return (
            float(self.min_detection_confidence),
            float(self.min_presence_confidence),
            float(self.min_tracking_confidence),
        )
