"""The one typed value of tracked per-frame motion, and its one reader and writer.

A video's motion is what drives a renderer: expression coefficients, head pose and gaze, frame by frame. The
renderer, reenactment, audio-driven rendering, the metrics and `portrait render` all take this one `Motion`, as
nerfstudio's renderers all take one `Cameras`; none of them reads `tracking.h5` itself.

Conventions (those of `tracking.h5`, `storage/schema.py`):
- frame axis first, T frames; `valid[t]`: the frame's parameters were measured in every stage that made them (the
  others are interpolated by the stages, or NaN where nothing could be measured);
- expression (T, K): coefficients of the morphable model's expression basis named `expression_names` (ICT: the 52
  ARKit blendshapes, values in [0, 1]); an empty `expression_names` means the basis is not named (user files);
- rotation (T, 3, 3) and translation (T, 3): model -> camera, OpenCV camera (x right, y down, z forward), translation
  in model units (ICT: cm);
- gaze_deg (T, 2): pitch, yaw of the combined gaze relative to the head in degrees (0, 0 = along the head's forward
  axis; `fitting/gaze.py`);
- timestamps_s (T,): presentation time of each frame on the source file's clock (the audio's), seconds; NaN when the
  source does not say (a motion file without a frame rate);
- fps: frames per second of the frame timeline (0 when unknown).

Arrays keep the dtype they were stored with (`tracking.h5`: expression float32; `read_motion` widens rotation,
translation and gaze to float64 as every consumer computes in float64). `Motion` holds no file handle and does no I/O.

Readers and writers: `read_motion` (tracking.h5 -> Motion; `read_driving_motion` adds the checks of a motion that
drives a renderer) and, for the metric features' motion part (re-extracted
from frames by `metrics/motion.py`), `motion_feature_arrays` / `motion_from_features` (Motion <-> the `features`
schema's `expression`, `rotation`, `gaze_pitch_yaw_deg`, `motion_valid`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np

from neural_renderer.errors import PipelineInputError
from neural_renderer.storage.h5io import frame_times

# The datasets of tracking.h5 a Motion is made of (the flags refine `valid` when present).
MOTION_DATASETS = ("fit/expression", "fit/rotation", "fit/translation", "gaze/head_pitch_yaw_deg")
VALID_FLAGS = ("fit/valid", "gaze/valid", "track/valid")


@dataclass(frozen=True, eq=False)
class Motion:
    """One video's tracked per-frame motion (see the module docstring for units and frames)."""

    expression: np.ndarray  # (T, K) expression coefficients (float32 as stored)
    expression_names: tuple[str, ...]  # (K,) basis names; () = unnamed
    rotation: np.ndarray  # (T, 3, 3) model -> camera rotation
    translation: np.ndarray  # (T, 3) model -> camera translation, model units
    gaze_deg: np.ndarray  # (T, 2) pitch, yaw relative to the head, degrees
    valid: np.ndarray  # (T,) bool: measured, not interpolated
    timestamps_s: np.ndarray  # (T,) float64 frame times, s (NaN: unknown)
    fps: float  # frames per second (0: unknown)

    def __post_init__(self) -> None:
        t = len(self.expression)
        shapes = {
            "expression": (self.expression, (t, self.expression.shape[1] if self.expression.ndim == 2 else -1)),
            "rotation": (self.rotation, (t, 3, 3)),
            "translation": (self.translation, (t, 3)),
            "gaze_deg": (self.gaze_deg, (t, 2)),
            "valid": (self.valid, (t,)),
            "timestamps_s": (self.timestamps_s, (t,)),
        }
        for name, (array, shape) in shapes.items():
            if np.shape(array) != shape:
                raise ValueError(f"Motion.{name} has shape {np.shape(array)}, expected {shape}")
        if self.expression_names and len(self.expression_names) != self.expression.shape[1]:
            raise ValueError(
                f"Motion has {self.expression.shape[1]} expression coefficients but {len(self.expression_names)} names"
            )

    def __len__(self) -> int:
        return len(self.expression)

    def frames(self, first: int, last: int) -> Motion:
        """Frames [first, last) (a slice along time; names and fps unchanged)."""
        s = slice(first, last)
        return replace(
            self,
            expression=self.expression[s],
            rotation=self.rotation[s],
            translation=self.translation[s],
            gaze_deg=self.gaze_deg[s],
            valid=self.valid[s],
            timestamps_s=self.timestamps_s[s],
        )

    def head(self, n: int) -> Motion:
        """The first n frames."""
        return self.frames(0, n)

    def finite(self) -> np.ndarray:
        """(T,) bool: expression, rotation, translation and gaze all finite."""
        return (
            np.isfinite(self.expression).all(1)
            & np.isfinite(self.rotation).all((1, 2))
            & np.isfinite(self.translation).all(1)
            & np.isfinite(self.gaze_deg).all(1)
        )

    def held_finite(self) -> Motion:
        """Each frame with a non-finite parameter takes the nearest finite frame's (ties: the earlier); `valid` is
        unchanged. ValueError when no frame is finite."""
        finite = self.finite()
        if finite.all():
            return self
        if not finite.any():
            raise ValueError("no frame with finite parameters")
        ok = np.flatnonzero(finite)
        near = ok[np.abs(np.arange(len(self))[:, None] - ok[None]).argmin(1)]
        return replace(
            self,
            expression=self.expression[near],
            rotation=self.rotation[near],
            translation=self.translation[near],
            gaze_deg=self.gaze_deg[near],
        )


def unknown_times(n: int, fps: float) -> np.ndarray:
    """Frame times of a motion that only knows its rate: frame / fps (NaN when the rate is unknown)."""
    return np.arange(n, dtype=np.float64) / fps if fps > 0 else np.full(n, np.nan)


def read_motion(path: str | Path) -> Motion:
    """tracking.h5 -> Motion: the one reader of the tracked motion. `valid` = measured by the fit, the gaze (a blink
    counts: its gaze is interpolated, the frame is one to learn) and the tracker, and finite. Names are () when the
    file has none. PipelineInputError names the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(path, "tracking file not found")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in MOTION_DATASETS if k not in f]
            if missing:
                raise PipelineInputError(path, f"not a tracking file: missing {missing}")
            expression = np.asarray(f["fit/expression"][()], np.float32)
            names = tuple(str(n) for n in f["fit/expression_names"].asstr()[()]) if "fit/expression_names" in f else ()
            rotation = np.asarray(f["fit/rotation"][()], np.float64)
            translation = np.asarray(f["fit/translation"][()], np.float64)
            gaze = np.asarray(f["gaze/head_pitch_yaw_deg"][()], np.float64)
            valid = np.ones(len(expression), bool)
            for key in VALID_FLAGS:
                if key in f:
                    ok = np.asarray(f[key][()], bool)
                    if key == "gaze/valid" and "gaze/eyes_closed" in f:
                        ok |= np.asarray(f["gaze/eyes_closed"][()], bool)
                    valid &= ok
            fps = float(f.attrs.get("fps", 25.0))
            times = frame_times(f, fps, len(expression))
    except PipelineInputError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise PipelineInputError(path, f"cannot read tracking file ({exc})") from None
    t = len(expression)
    for name, arr in (
        ("rotation", rotation),
        ("translation", translation),
        ("gaze", gaze),
        ("valid flags", valid),
        ("timestamps_s", times),
    ):
        if len(arr) != t:
            raise PipelineInputError(path, f"{name} has {len(arr)} frames, expression has {t}")
    if names and len(names) != expression.shape[1]:
        raise PipelineInputError(path, f"{expression.shape[1]} expression coefficients but {len(names)} names")
    motion = Motion(expression, names, rotation, translation, gaze, valid, times, fps)
    return replace(motion, valid=valid & motion.finite())


def read_driving_motion(path: str | Path) -> Motion:
    """`read_motion` checked for driving a renderer (reenactment, audio, `portrait render`): at least one frame, named
    expression coefficients; a non-finite frame (unexpected: the fit and gaze stages interpolate) holds the nearest
    finite one."""
    motion = read_motion(path)
    if len(motion) == 0:
        raise PipelineInputError(path, "tracking file has no frames")
    if not motion.expression_names:
        raise PipelineInputError(path, "not a tracking file: missing ['fit/expression_names']")
    try:
        return motion.held_finite()
    except ValueError as exc:
        raise PipelineInputError(path, str(exc)) from None


def motion_feature_arrays(motion: Motion) -> dict[str, np.ndarray]:
    """Motion -> the motion datasets of the `features` schema (float32; translation and times are not stored)."""
    return {
        "expression": np.asarray(motion.expression, np.float32),
        "rotation": np.asarray(motion.rotation, np.float32),
        "gaze_pitch_yaw_deg": np.asarray(motion.gaze_deg, np.float32),
        "motion_valid": np.asarray(motion.valid, bool),
    }


def motion_from_features(arrays: dict[str, np.ndarray], fps: float = 0.0) -> Motion:
    """The motion datasets of a `features` file -> Motion: unnamed basis, translation NaN (not stored), frame times
    from `fps` when given."""
    expression = arrays["expression"]
    t = len(expression)
    return Motion(
        expression,
        (),
        arrays["rotation"],
        np.full((t, 3), np.nan, np.float32),
        arrays["gaze_pitch_yaw_deg"],
        np.asarray(arrays["motion_valid"], bool),
        unknown_times(t, fps),
        fps,
    )
