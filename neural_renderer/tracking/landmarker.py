"""MediaPipe FaceLandmarker (Tasks API, VIDEO mode) over a frame sequence -> `LandmarkTrack`.

VIDEO mode tracks the face from frame to frame (the detector only reruns when tracking is lost), which is both faster
and temporally steadier than detecting every frame independently; it requires one landmarker per video and strictly
increasing timestamps. The landmarker is used as a context manager: its `__del__` would otherwise close it at
interpreter exit, when the native library may already be gone.

Landmark index conventions (verified on d0.mp4 in tests/test_tracking.py): MediaPipe's "right"/"left" are the
*subject's* sides. In a non-mirrored frontal view the subject's right eye is on the image's left, so
`RIGHT_IRIS` (468-472) has smaller x than `LEFT_IRIS` (473-477). Each iris tuple is (centre, 4 contour points).
A mirrored ("selfie") video flips the image sides, not the indices: the model labels the face anatomically as seen.

Several faces: a first pass tracks one face and counts faces once a second; if it saw several, a second pass tracks up
to `MAX_FACES` and keeps one per frame (a single-face pass is steadier: MediaPipe follows the face from its previous
landmarks instead of re-detecting it every frame, so one-face videos keep that pass). The first frame with a face picks
it by `face` ('largest': the widest landmark extent; 'centre': nearest the image centre); later frames keep the face
nearest to the last kept one, so the choice does not flip when two faces swap order or size. Once a second face has
been seen, a lone face farther than one face width from the last kept position is another person: the frame counts as
having no face (it is interpolated downstream), unless the kept face has been missing for over a second, when the
choice is made again. A video with more than one face logs a warning.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neural_renderer.errors import PipelineInputError
from neural_renderer.tracking.config import TrackConfig

log = logging.getLogger(__name__)

N_LANDMARKS = 478  # 468 mesh points + 2 x 5 iris points
MAX_FACES = 4  # faces the landmarker looks for; one of them is tracked (`face`)
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
    n_faces: np.ndarray | None = None  # (T,) int: faces the landmarker found in each frame

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
    frames: Iterable[np.ndarray] | Callable[[], Iterable[np.ndarray]],
    fps: float,
    model_path: str | Path,
    cfg: TrackConfig = TrackConfig(),  # noqa: B008 - frozen, so one shared default instance is safe
) -> LandmarkTrack:
    """Run one FaceLandmarker (VIDEO mode) over `frames` (RGB uint8, all the same size); track one face (`cfg.face`).

    Pass 1 tracks a single face (MediaPipe then follows it from frame to frame: the steadiest landmarks) and looks for
    more faces once a second. If it finds several, pass 2 tracks up to MAX_FACES and keeps the chosen one; that needs
    the frames again: `frames` must then be a sequence or a function returning a fresh iterable (the stage passes a
    decoder factory), else pass 1's single face is kept with a warning. Frames without a face get valid=False and NaN
    rows; this never raises for a missing face (the caller decides what too few detections means).
    """
    if not fps or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    face, confidences = cfg.face, cfg.confidences
    source = frames if callable(frames) else (lambda: frames)
    track = _track(source(), fps, model_path, confidences, num_faces=1, face=face)
    most = int(track.n_faces.max()) if track.n_frames else 0
    if most <= 1:
        return track
    several = np.nonzero(track.n_faces > 1)[0]
    message = f"{most} faces found (first in frame {several[0]}, {len(several)} checked frames have several)"
    if not (callable(frames) or isinstance(frames, Sequence)):
        log.warning("%s; frames cannot be read twice, keeping MediaPipe's single face", message)
        return track
    log.warning("%s: tracking the %s one, the same across frames (track.face: largest | centre)", message, face)
    return _track(source(), fps, model_path, confidences, num_faces=MAX_FACES, face=face)


def _track(
    frames: Iterable[np.ndarray],
    fps: float,
    model_path: str | Path,
    confidences: tuple[float, float, float],
    *,
    num_faces: int,
    face: str,
) -> LandmarkTrack:
    """One VIDEO-mode pass. With num_faces=1, an IMAGE-mode landmarker counts faces on one frame per second."""
    import mediapipe as mp
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions, RunningMode

    model_path = Path(model_path)
    if not model_path.is_file():
        raise PipelineInputError(model_path, "FaceLandmarker model file not found")

    def options(mode, n: int, outputs: bool) -> FaceLandmarkerOptions:
        return FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=mode,
            num_faces=n,
            min_face_detection_confidence=confidences[0],
            min_face_presence_confidence=confidences[1],
            min_tracking_confidence=confidences[2],
            output_face_blendshapes=outputs,
            output_facial_transformation_matrixes=outputs,
        )

    try:
        landmarker = FaceLandmarker.create_from_options(options(RunningMode.VIDEO, num_faces, True))
    except (ValueError, RuntimeError) as exc:
        raise PipelineInputError(model_path, f"cannot load the FaceLandmarker model ({exc})") from None
    counter = None
    if num_faces == 1:  # counts faces once a second: a single-face pass would never see a second one
        try:
            counter = FaceLandmarker.create_from_options(options(RunningMode.IMAGE, MAX_FACES, False))
        except BaseException:
            landmarker.close()
            raise

    per_frame: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
    names: list[str] | None = None
    size: tuple[int, int] | None = None
    previous_ts: int | None = None
    chooser = FaceChooser(face, fps)
    counts: list[int] = []
    check_every = max(1, int(round(fps)))
    with landmarker, counter or contextlib.nullcontext():
        for index, frame in enumerate(frames):
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame {index}: expected RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
            if size is None:
                size = (frame.shape[1], frame.shape[0])
            elif (frame.shape[1], frame.shape[0]) != size:
                raise ValueError(
                    f"frame {index}: size {frame.shape[1]}x{frame.shape[0]} "
                    f"differs from the first frame's {size[0]}x{size[1]}"
                )
            previous_ts = frame_timestamp_ms(index, fps, previous_ts)
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
            result = landmarker.detect_for_video(image, previous_ts)
            faces = [_landmark_array(points, size) for points in result.face_landmarks]
            n_faces = len(faces)
            if counter is not None and index % check_every == 0:
                n_faces = max(n_faces, len(counter.detect(image).face_landmarks))
            counts.append(n_faces)
            k = chooser.choose(faces, size)
            if k is None:
                per_frame.append(None)
                continue
            frame_names, row = _blendshape_row(result.face_blendshapes[k] if len(result.face_blendshapes) > k else [])
            if names is None:
                names = frame_names
            per_frame.append((faces[k].astype(np.float32), row, _transform(result, k)))  # as stored: half the memory
    track = _assemble(per_frame, names)
    track.n_faces = np.asarray(counts, dtype=np.int32)
    return track


class FaceChooser:
    """Picks the tracked face among a frame's faces, consistently across frames (see the module docstring)."""

    def __init__(self, rule: str, fps: float):
        self.rule = rule
        self.patience = max(1, int(round(fps)))  # frames without the kept face before choosing again
        self.last: tuple[np.ndarray, float] | None = None  # centre (x, y), width of the last kept face
        self.missing = 0
        self.seen_several = False

    def choose(self, faces: list[np.ndarray], size: tuple[int, int]) -> int | None:
        if len(faces) > 1:
            self.seen_several = True
        if not faces:
            self.missing += 1
            return None
        centres = [np.nanmean(f[:, :2], axis=0) for f in faces]
        widths = [float(np.nanmax(f[:, 0]) - np.nanmin(f[:, 0])) for f in faces]
        if len(faces) == 1 and not self.seen_several:
            k = 0  # the common case: one face, no choice to make
        elif self.last is None or self.missing > self.patience:
            if self.rule == "largest":
                k = int(np.argmax(widths))
            else:
                middle = np.array(size, dtype=np.float64) / 2
                k = int(np.argmin([np.linalg.norm(c - middle) for c in centres]))
        else:
            centre, width = self.last
            distances = [float(np.linalg.norm(c - centre)) for c in centres]
            k = int(np.argmin(distances))
            if distances[k] > width:
                self.missing += 1
                return None
        self.last = (centres[k], widths[k])
        self.missing = 0
        return k


def _landmark_array(landmarks, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    points = np.array([(p.x, p.y, p.z) for p in landmarks], dtype=np.float64)
    if points.shape != (N_LANDMARKS, 3):
        raise RuntimeError(
            f"FaceLandmarker returned {points.shape[0]} landmarks, expected {N_LANDMARKS} (wrong model?)"
        )
    points *= (width, height, width)
    return points.astype(np.float32)


def _blendshape_row(categories) -> tuple[list[str], np.ndarray]:
    """Scores placed by category index (not list position), and the names in index order."""
    if not categories:
        return list(BLENDSHAPE_NAMES), np.full(len(BLENDSHAPE_NAMES), np.nan, np.float32)
    ordered = sorted(categories, key=lambda c: c.index)
    return [c.category_name for c in ordered], np.array([c.score for c in ordered], dtype=np.float32)


def _transform(result, k: int = 0) -> np.ndarray:
    matrices = result.facial_transformation_matrixes
    if len(matrices) <= k:
        return np.full((4, 4), np.nan, np.float32)
    return np.asarray(matrices[k], dtype=np.float32).reshape(4, 4)


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
