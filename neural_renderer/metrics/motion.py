"""Expression, head pose and gaze re-extracted from frames with the project's own tracker and fitter (DECA is not
available), and the per-frame distances between two such sequences.

`extract_motion` runs the track -> (identity) crop -> fit -> gaze chain of the pipeline's stages on in-memory frames:
one MediaPipe FaceLandmarker in VIDEO mode per call (`track_frames`, which opens and closes it as a context manager),
`fit_sequence_refined` with the fit stage's configuration (the `fit:` section the workflow passes; identity fitted over
the frames of the call, as the fit stage does per video) and `gaze_from_fit` with the `gaze:` section's. The frames
are square crops already, so the tracker's pixel landmarks are the crop-space landmarks.
Frames without a face are invalid (NaN rows), never an error. The result is the pipeline's one motion value,
`storage.Motion` (float32 arrays, as the `features` schema stores them; frame times frame / fps).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neural_renderer.fitting.config import FitConfig, GazeConfig
from neural_renderer.fitting.gaze import vectors_from_pitch_yaw
from neural_renderer.storage.motion import Motion, unknown_times


def _empty_motion(n: int, names: list[str], fps: float, valid: np.ndarray | None = None) -> Motion:
    """All-NaN parameters (float32, as the features store them): frames without a face stay NaN."""
    return Motion(
        np.full((n, len(names)), np.nan, np.float32),
        tuple(str(name) for name in names),
        np.full((n, 3, 3), np.nan, np.float32),
        np.full((n, 3), np.nan, np.float32),
        np.full((n, 2), np.nan, np.float32),
        np.zeros(n, bool) if valid is None else np.asarray(valid, bool).copy(),
        unknown_times(n, fps),
        fps,
    )


def extract_motion(
    frames: np.ndarray,
    fps: float,
    *,
    landmarker_model: str | Path,
    morphable_model: str | Path,
    correspondence: str | Path | None = None,
    fit_cfg: FitConfig | None = None,
    gaze_cfg: GazeConfig | None = None,
    kind: str = "auto",
) -> Motion:
    """Track, fit and estimate gaze on (N, R, R, 3) uint8 RGB crops.

    correspondence: the correspondence stage's .npz for this model and landmarker (refused if built for another
    model); None builds it in memory (a second or two: pass the file when calling repeatedly).
    fit_cfg, gaze_cfg: the fit and gaze stages' settings (None: their defaults, device resolved).
    kind: the morphable model loader's kind (auto from the file).
    """
    from neural_renderer.fitting import blink_scores, fit_tracked_landmarks, gaze_from_fit, resolved_fit_config
    from neural_renderer.morphable import build_correspondence, load_correspondence, load_morphable_model
    from neural_renderer.tracking import track_frames

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[1] != frames.shape[2]:
        raise ValueError(f"need square uint8 RGB crops (N, R, R, 3), got {frames.dtype} {frames.shape}")
    n, res = len(frames), int(frames.shape[1])
    model = load_morphable_model(morphable_model, kind=kind)
    if n == 0:
        return _empty_motion(0, model.expression_names, fps)
    track = track_frames(iter(frames), fps, landmarker_model)
    out = _empty_motion(n, model.expression_names, fps, track.valid)
    valid = out.valid
    if not valid.any():
        return out
    if correspondence is None:
        corr = build_correspondence(model, landmarker_model, dense=True)
    else:
        corr = load_correspondence(correspondence, morphable_model)
    cfg = fit_cfg or resolved_fit_config({})
    # crop step = identity: the tracker ran on the crops, so its pixel landmarks are already crop-space landmarks
    fit = fit_tracked_landmarks(
        track.landmarks, valid, model, corr, res, cfg, track.blendshapes, track.blendshape_names
    )
    gaze = gaze_from_fit(
        track.landmarks,
        fit,
        model,
        gaze_cfg or GazeConfig(),
        valid=valid,
        blink_score=blink_scores(track.blendshapes, track.blendshape_names),
    )
    out.expression[valid] = np.asarray(fit.expression, np.float32)[valid]
    out.rotation[valid] = np.asarray(fit.rotation, np.float32)[valid]
    out.translation[valid] = np.asarray(fit.translation, np.float32)[valid]
    ok = valid & (
        np.asarray(gaze.valid, bool) | np.asarray(gaze.eyes_closed, bool)
    )  # blinks: interpolated, as in gaze.h5
    out.gaze_deg[ok] = np.asarray(gaze.head_pitch_yaw_deg, np.float32)[ok]
    return out


def _pair(a: Motion, b: Motion) -> np.ndarray:
    if len(a.valid) != len(b.valid):
        raise ValueError(f"motion sequences differ in length: {len(a.valid)} and {len(b.valid)}")
    return np.asarray(a.valid, bool) & np.asarray(b.valid, bool)


def expression_distance(a: Motion, b: Motion) -> np.ndarray:
    """(N,) mean absolute difference of the expression coefficients per frame; NaN where either frame is invalid."""
    both = _pair(a, b)
    d = np.abs(np.asarray(a.expression, np.float64) - np.asarray(b.expression, np.float64)).mean(1)
    return np.where(both, d, np.nan)


def pose_distance_deg(a: Motion, b: Motion) -> np.ndarray:
    """(N,) geodesic angle between the rotations, arccos((tr(R_a R_b^T) - 1) / 2) in degrees; NaN where either frame
    is invalid.

    Evaluated as atan2(sin, cos) with M = R_a R_b^T, cos = (tr M - 1) / 2 and sin = ||M - M^T||_F / (2 sqrt 2) (the
    skew part of M is sin(theta) [axis]_x): the same angle as the arccos formula, but exact near 0 and 180 degrees,
    where arccos of a cosine rounded to float32 loses ~0.03 degrees (float64: ~1e-6).
    """
    both = _pair(a, b)
    m = np.asarray(a.rotation, np.float64) @ np.swapaxes(np.asarray(b.rotation, np.float64), -1, -2)
    cos = (np.trace(m, axis1=-2, axis2=-1) - 1.0) / 2.0
    sin = np.sqrt(((m - np.swapaxes(m, -1, -2)) ** 2).sum((-2, -1)) / 8.0)
    return np.where(both, np.degrees(np.arctan2(sin, cos)), np.nan)


def gaze_distance_deg(a: Motion, b: Motion) -> np.ndarray:
    """(N,) angle between the gaze unit vectors made from pitch/yaw with neural_renderer.fitting.gaze's convention,
    via atan2(|u x v|, u . v) (exact for small angles too); NaN where either frame is invalid or has no gaze."""
    both = _pair(a, b)
    va = vectors_from_pitch_yaw(np.asarray(a.gaze_deg, np.float64))
    vb = vectors_from_pitch_yaw(np.asarray(b.gaze_deg, np.float64))
    angle = np.degrees(np.arctan2(np.linalg.norm(np.cross(va, vb), axis=-1), (va * vb).sum(-1)))
    return np.where(both, angle, np.nan)
