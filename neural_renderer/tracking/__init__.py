"""Face tracking: MediaPipe FaceLandmarker per frame -> LandmarkTrack (478 landmarks, blendshapes, head transform)."""

from neural_renderer.tracking.config import TrackConfig
from neural_renderer.tracking.landmarker import (
    BLENDSHAPE_NAMES,
    LEFT_EYE_CORNERS,
    LEFT_IRIS,
    LEFT_IRIS_CENTER,
    N_LANDMARKS,
    RIGHT_EYE_CORNERS,
    RIGHT_IRIS,
    RIGHT_IRIS_CENTER,
    LandmarkTrack,
    frame_timestamp_ms,
    track_frames,
)

__all__ = [
    "BLENDSHAPE_NAMES",
    "LEFT_EYE_CORNERS",
    "LEFT_IRIS",
    "LEFT_IRIS_CENTER",
    "N_LANDMARKS",
    "RIGHT_EYE_CORNERS",
    "RIGHT_IRIS",
    "RIGHT_IRIS_CENTER",
    "LandmarkTrack",
    "TrackConfig",
    "frame_timestamp_ms",
    "track_frames",
]
