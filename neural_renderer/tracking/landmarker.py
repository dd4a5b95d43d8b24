"""MediaPipe FaceLandmarker (Tasks API, VIDEO mode) over a frame sequence -> `LandmarkTrack`.

VIDEO mode tracks the face from frame to frame (the detector only reruns when tracking is lost), which is both faster
and temporally steadier than detecting every frame independently; it requires one landmarker per video and strictly
increasing timestamps. The landmarker is used as a context manager: its `__del__` would otherwise close it at
interpreter exit, when the native library may already be gone.

Landmark index conventions (verified on d0.mp4 in tests/test_tracking.py): MediaPipe's "right"/"left" are the
*subject's* sides. In a non-mirrored frontal view the subject's right eye is on the image's left, so
`RIGHT_IRIS` (468-472) has smaller x than `LEFT_IRIS` (473-477). Each iris tuple is (centre, 4 contour points).
A mirrored ("selfie") video flips the image sides, not the indices: the model labels the face anatomically as seen.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neural_renderer.errors import PipelineInputError

log = logging.getLogger(__name__)

N_LANDMARKS = 478  # 468 mesh points + 2 x 5 iris points
RIGHT_IRIS: tuple[int, ...] = (468, 469, 470, 471, 472)  # subject's right eye; image-left when not mirrored
LEFT_IRIS: tuple[int, ...] = (473, 474, 475, 476, 477)  # subject's left eye; image-right when not mirrored
RIGHT_IRIS_CENTER = RIGHT_IRIS[0]
LEFT_IRIS_CENTER = LEFT_IRIS[0]
RIGHT_EYE_CORNERS: tuple[int, int] = (33, 133)  # subject's right eye: outer, inner corner
LEFT_EYE_CORNERS: tuple[int, int] = (263, 362)  # subject's left eye: outer, inner corner

# The 52 blendshape categories of face_landmarker.task, in model order ('_neutral' + 51 ARKit names).
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)  # fmt: skip


@dataclass
class LandmarkTrack:
    """Per-frame FaceLandmarker output; invalid (no face) frames hold NaN in every float array.

    landmarks (T, 478, 3) float32: x, y in source-image pixels, z = MediaPipe's normalised z * image width.
    blendshapes (T, B) float32 scores; blendshape_names (B,); transforms (T, 4, 4) float32 canonical face -> camera
    (cm); valid (T,) bool.
    """

    landmarks: np.ndarray
    blendshapes: np.ndarray
    blendshape_names: list[str]
    transforms: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        t = len(self.valid)
        if self.landmarks.shape != (t, N_LANDMARKS, 3):
            raise ValueError(f"landmarks must be ({t}, {N_LANDMARKS}, 3), got {self.landmarks.shape}")
        if self.blendshapes.shape != (t, len(self.blendshape_names)):
            raise ValueError(f"blendshapes must be ({t}, {len(self.blendshape_names)}), got {self.blendshapes.shape}")
        if self.transforms.shape != (t, 4, 4):
            raise ValueError(f"transforms must be ({t}, 4, 4), got {self.transforms.shape}")

    @property
    def n_frames(self) -> int:
        return len(self.valid)

    @property
    def detection_rate(self) -> float:
        """Fraction of frames with a face (0.0 for an empty track)."""
        return float(np.mean(self.valid)) if len(self.valid) else 0.0


def frame_timestamp_ms(index: int, fps: float, previous: int | None) -> int:
    """Integer ms timestamp of frame `index`, forced strictly above `previous` (MediaPipe rejects repeats).

    Rounding index * 1000 / fps can repeat a value above 1000 fps or, for odd rates, collide after rounding.
    """
    ts = int(round(index * 1000.0 / fps))
    return ts if previous is None or ts > previous else previous + 1


def track_frames(
    frames: Iterable[np.ndarray],
    fps: float,
    model_path: str | Path,
    *,
    min_detection_confidence: float = 0.5,
    min_presence_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
) -> LandmarkTrack:
    """Run one FaceLandmarker (VIDEO mode, one face) over `frames` (RGB uint8, all the same size).

    Frames without a face get valid=False and NaN rows; this never raises for a missing face (the caller decides
    what too few detections means).
    """
    import mediapipe as mp
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions, RunningMode

    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    model_path = Path(model_path)
    if not model_path.is_file():
        raise PipelineInputError(model_path, "FaceLandmarker model file not found")
    options = FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=RunningMode.VIDEO,
        num_faces=1,
        min_face_detection_confidence=float(min_detection_confidence),
        min_face_presence_confidence=float(min_presence_confidence),
        min_tracking_confidence=float(min_tracking_confidence),
        output_face_blendshapes=True,
        output_facial_transformation_matrixes=True,
    )
    try:
        landmarker = FaceLandmarker.create_from_options(options)
    except (ValueError, RuntimeError) as exc:
        raise PipelineInputError(model_path, f"cannot load the FaceLandmarker model ({exc})") from None

    per_frame: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
    names: list[str] | None = None
    size: tuple[int, int] | None = None
    previous_ts: int | None = None
    with landmarker:
        for index, frame in enumerate(frames):
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame {index}: expected RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
            if size is None:
                size = (frame.shape[1], frame.shape[0])
            elif (frame.shape[1], frame.shape[0]) != size:
                raise ValueError(f"frame {index}: size {frame.shape[1]}x{frame.shape[0]} differs from the first frame's {size[0]}x{size[1]}")
            previous_ts = frame_timestamp_ms(index, fps, previous_ts)
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
            result = landmarker.detect_for_video(image, previous_ts)
            if not result.face_landmarks:
                per_frame.append(None)
                continue
            frame_names, row = _blendshape_row(result.face_blendshapes[0] if result.face_blendshapes else [])
            if names is None:
                names = frame_names
            per_frame.append((_landmark_array(result.face_landmarks[0], size), row, _transform(result)))
    return _assemble(per_frame, names)


def _landmark_array(landmarks, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    points = np.array([(p.x, p.y, p.z) for p in landmarks], dtype=np.float64)
    if points.shape != (N_LANDMARKS, 3):
        raise RuntimeError(f"FaceLandmarker returned {points.shape[0]} landmarks, expected {N_LANDMARKS} (wrong model?)")
    points *= (width, height, width)
    return points.astype(np.float32)


def _blendshape_row(categories) -> tuple[list[str], np.ndarray]:
    """Scores placed by category index (not list position), and the names in index order."""
    if not categories:
        return list(BLENDSHAPE_NAMES), np.full(len(BLENDSHAPE_NAMES), np.nan, np.float32)
    ordered = sorted(categories, key=lambda c: c.index)
    return [c.category_name for c in ordered], np.array([c.score for c in ordered], dtype=np.float32)


def _transform(result) -> np.ndarray:
    matrices = result.facial_transformation_matrixes
    if not matrices:
        return np.full((4, 4), np.nan, np.float32)
    return np.asarray(matrices[0], dtype=np.float32).reshape(4, 4)


def _assemble(per_frame: list, names: list[str] | None) -> LandmarkTrack:
    names = list(BLENDSHAPE_NAMES) if names is None else names
    if names != list(BLENDSHAPE_NAMES):
        log.warning("the model's blendshape names differ from MediaPipe's usual 52: %s", names)
    t, b = len(per_frame), len(names)
    landmarks = np.full((t, N_LANDMARKS, 3), np.nan, np.float32)
    blendshapes = np.full((t, b), np.nan, np.float32)
    transforms = np.full((t, 4, 4), np.nan, np.float32)
    valid = np.zeros(t, dtype=bool)
    for i, item in enumerate(per_frame):
        if item is None:
            continue
        landmarks[i], row, transforms[i] = item
        if row.shape == (b,):
            blendshapes[i] = row
        valid[i] = True
    return LandmarkTrack(landmarks, blendshapes, names, transforms, valid)
