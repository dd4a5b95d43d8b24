"""Motion files a renderer can be driven with: a tracking.h5, or per-frame parameters in a CSV or NPZ.

The CSV/NPZ units are those of tracking.h5 (`fit/*`, `gaze/head_pitch_yaw_deg`), so a motion exported from one
video, edited or synthesised elsewhere, means the same thing to every renderer fitted with the same morphable model:

- expression: CSV one column per coefficient, named as the model's basis (`jawOpen`, ...); NPZ `expression`
  (T, Ke) and `expression_names` (Ke,). Values in [0, 1].
- rotation: CSV `rx`, `ry`, `rz`; NPZ `axis_angle` (T, 3) or `rotation` (T, 3, 3). Axis-angle in rad of the
  model -> camera rotation (`fit/axis_angle`).
- translation: CSV `tx`, `ty`, `tz`; NPZ `translation` (T, 3). Model -> camera, model units (`fit/translation`;
  ICT: cm), camera x right, y down, z forward.
- gaze: CSV `gaze_pitch_deg`, `gaze_yaw_deg`; NPZ `gaze_pitch_yaw_deg` (T, 2). Degrees, relative to the head
  (`gaze/head_pitch_yaw_deg`).
- optional: CSV `frame` (ignored) and `valid` (0/1: the frames that count for the reference pose); NPZ `valid`
  (T,) and `fps` ().

Every other CSV column is an expression coefficient, so a file in another basis fails the basis check by name.
Expression columns are matched to the model's basis by name (any order); a different set of names is refused.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from neural_renderer.errors import PipelineInputError
from neural_renderer.fitting.rotation import axis_angle_to_matrix_np
from neural_renderer.reenact.transfer import check_expression_names
from neural_renderer.storage.motion import Motion, read_driving_motion, unknown_times

ROTATION_COLUMNS = ("rx", "ry", "rz")
TRANSLATION_COLUMNS = ("tx", "ty", "tz")
GAZE_COLUMNS = ("gaze_pitch_deg", "gaze_yaw_deg")
OTHER_COLUMNS = ("frame", "valid")
MOTION_SUFFIXES = (".h5", ".hdf5", ".csv", ".npz")


def read_motion_file(path: str | Path) -> Motion:
    """tracking.h5, CSV or NPZ -> `storage.Motion` (fps 0 and frame times NaN when the file does not say);
    PipelineInputError names the file."""
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(path, "motion file not found")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return read_driving_motion(path)
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".npz":
        return _read_npz(path)
    raise PipelineInputError(path, f"not a motion file: expected one of {', '.join(MOTION_SUFFIXES)}")


def _read_csv(path: Path) -> Motion:
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PipelineInputError(path, f"cannot read CSV ({exc})") from None
    if len(rows) < 2:
        raise PipelineInputError(path, "CSV needs a header row and at least one frame")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in ROTATION_COLUMNS + TRANSLATION_COLUMNS + GAZE_COLUMNS if c not in header]
    if missing:
        raise PipelineInputError(path, f"CSV lacks the column(s) {missing} (see `portrait render --help`)")
    if len(set(header)) != len(header):
        raise PipelineInputError(path, "CSV has duplicate column names")
    try:
        table = np.array([[float(v) for v in row] for row in rows[1:] if row], np.float64)
    except ValueError as exc:
        raise PipelineInputError(path, f"CSV has a non-numeric value ({exc})") from None
    if table.ndim != 2 or table.shape[1] != len(header):
        raise PipelineInputError(path, f"CSV rows must all have the header's {len(header)} values")
    col = {name: table[:, i] for i, name in enumerate(header)}
    reserved = ROTATION_COLUMNS + TRANSLATION_COLUMNS + GAZE_COLUMNS + OTHER_COLUMNS
    names = [h for h in header if h not in reserved]
    expression = np.stack([col[n] for n in names], 1) if names else np.zeros((len(table), 0))
    valid = col["valid"] > 0.5 if "valid" in col else np.ones(len(table), bool)
    stack = lambda cols: np.stack([col[c] for c in cols], 1)  # noqa: E731
    rotation = axis_angle_to_matrix_np(stack(ROTATION_COLUMNS))
    return _checked(path, expression, names, rotation, stack(TRANSLATION_COLUMNS), stack(GAZE_COLUMNS), valid, 0.0)


def _read_npz(path: Path) -> Motion:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise PipelineInputError(path, f"cannot read NPZ ({exc})") from None
    need = ["expression", "expression_names", "translation", "gaze_pitch_yaw_deg"]
    missing = [k for k in need if k not in data]
    if "rotation" not in data and "axis_angle" not in data:
        missing.append("rotation or axis_angle")
    if missing:
        raise PipelineInputError(path, f"NPZ lacks the key(s) {missing} (see `portrait render --help`)")
    if "rotation" in data:
        rotation = data["rotation"]
    else:
        rotation = axis_angle_to_matrix_np(np.asarray(data["axis_angle"], np.float64))
    t = len(data["expression"])
    valid = np.asarray(data["valid"], bool) if "valid" in data else np.ones(t, bool)
    fps = float(data["fps"]) if "fps" in data else 0.0
    names = [str(n) for n in data["expression_names"]]
    return _checked(
        path, data["expression"], names, rotation, data["translation"], data["gaze_pitch_yaw_deg"], valid, fps
    )


def _checked(path: Path, expression, names: list[str], rotation, translation, gaze, valid, fps: float) -> Motion:
    expression = np.asarray(expression, np.float32)
    rotation, translation, gaze = (np.asarray(a, np.float64) for a in (rotation, translation, gaze))
    t = len(expression)
    if t == 0:
        raise PipelineInputError(path, "motion has no frames")
    shapes = {
        "expression": (expression, (t, len(names))),
        "rotation": (rotation, (t, 3, 3)),
        "translation": (translation, (t, 3)),
        "gaze": (gaze, (t, 2)),
        "valid": (np.asarray(valid), (t,)),
    }
    for name, (array, shape) in shapes.items():
        if array.shape != shape:
            raise PipelineInputError(path, f"{name} has shape {array.shape}, expected {shape}")
    for name in ("expression", "rotation", "translation", "gaze"):
        array = shapes[name][0]
        if not np.isfinite(array).all():
            raise PipelineInputError(path, f"{name} has non-finite values")
    if not np.allclose(rotation @ np.swapaxes(rotation, 1, 2), np.eye(3), atol=1e-4):
        raise PipelineInputError(path, "rotation matrices are not orthonormal")
    return Motion(
        expression, tuple(names), rotation, translation, gaze, np.asarray(valid, bool), unknown_times(t, fps), fps
    )


def align_expression(motion: Motion, basis: Sequence[str], path: str | Path) -> Motion:
    """The motion with its expression columns in the order of `basis` (the model's names); a motion in another
    basis (other names, or another count when either side is unnamed) raises a one-line PipelineInputError."""
    basis, names = [str(n) for n in basis], [str(n) for n in motion.expression_names]
    ke = motion.expression.shape[1]
    if not basis or not names:
        if ke != len(basis) and basis:
            raise PipelineInputError(
                path, f"wrong expression basis: motion has {ke} coefficients, the model {len(basis)}"
            )
        return motion
    if sorted(names) != sorted(basis) or len(set(names)) != len(names):
        reason = check_expression_names(names, basis) or "duplicate expression names"
        extra, lacking = sorted(set(names) - set(basis)), sorted(set(basis) - set(names))
        detail = f"; not in the model: {extra[:5]}, missing: {lacking[:5]}" if extra or lacking else ""
        reason = reason.replace("driver", "motion").replace("target", "model")
        raise PipelineInputError(path, f"wrong expression basis for this model: {reason}{detail}")
    order = [names.index(n) for n in basis]
    return replace(motion, expression=motion.expression[:, order], expression_names=tuple(basis))
