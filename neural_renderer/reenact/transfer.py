"""Pure maths of cross-identity motion transfer (numpy in, numpy out; no I/O).

Both identities are fitted with the same morphable model, so expression coefficients share one ARKit-named space
and can be carried over directly. Head pose and gaze are transferred *relative to each identity's mean*: the
driver's motion about its own mean pose is applied to the target's mean pose, so the target stays where its renderer
saw it during training (its framing, distance and typical head angle) while moving like the driver.

Rotations are full model -> camera matrices (`fitting/camera.py`). With D_t = R_drv_t R_drv_mean^T (the driver's
rotation away from its mean, in camera coordinates), R_out_t = D_t R_tgt_mean. The mean is the chordal L2 mean
(scipy `Rotation.mean`: argmin_M sum ||R_t - M||_F^2), which is left- and right-equivariant, so the chordal mean
of the outputs is exactly R_tgt_mean.

The input is the pipeline's one motion value, `storage.Motion` (units and frames in its docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from neural_renderer.storage.motion import Motion


@dataclass
class MotionStats:
    """An identity's reference pose: chordal mean rotation, mean translation and gaze, neutral expression."""

    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)
    gaze_deg: np.ndarray  # (2,)
    neutral_expression: np.ndarray  # (Ke,)


def rotation_mean(rotations: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(T, 3, 3) proper rotations -> (3, 3) chordal L2 mean (optionally weighted)."""
    return Rotation.from_matrix(np.asarray(rotations, np.float64)).mean(weights).as_matrix()


def project_to_rotation(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) arbitrary matrices -> nearest proper rotations (Frobenius norm; SVD with the det fixed to +1)."""
    u, _, vt = np.linalg.svd(np.asarray(matrices, np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, -1] *= d[..., None]
    return u @ vt


def expression_neutral(expression: np.ndarray, valid: np.ndarray | None = None, percentile: float = 10.0) -> np.ndarray:
    """Per-coefficient neutral value: the `percentile` over the valid frames (see ReenactConfig.neutral_percentile)."""
    e = np.asarray(expression, np.float64)
    if valid is not None and np.any(valid):
        e = e[np.asarray(valid, bool)]
    return np.percentile(e, percentile, axis=0)


def motion_stats(motion: Motion, neutral_percentile: float = 10.0) -> MotionStats:
    """Reference pose over the valid frames (all frames if none is flagged valid)."""
    v = motion.valid if motion.valid.any() else np.ones(len(motion), bool)
    return MotionStats(
        rotation=rotation_mean(motion.rotation[v]),
        translation=motion.translation[v].mean(0),
        gaze_deg=motion.gaze_deg[v].mean(0),
        neutral_expression=expression_neutral(motion.expression, v, neutral_percentile),
    )


def transfer_expression(
    e_drv: np.ndarray,
    drv_neutral: np.ndarray | None = None,
    tgt_neutral: np.ndarray | None = None,
    mode: str = "relative",
) -> np.ndarray:
    """absolute: e_drv | relative: clip(e_drv - drv_neutral + tgt_neutral, 0, 1) (rest offsets swapped)."""
    e = np.asarray(e_drv, np.float64)
    if mode == "absolute":
        return np.clip(e, 0.0, 1.0)
    if mode != "relative":
        raise ValueError(f"expression mode must be absolute or relative, got {mode!r}")
    return np.clip(e - np.asarray(drv_neutral)[None] + np.asarray(tgt_neutral)[None], 0.0, 1.0)


def transfer_rotation(r_drv: np.ndarray, drv_mean: np.ndarray, tgt_mean: np.ndarray) -> np.ndarray:
    """R_out_t = (R_drv_t R_drv_mean^T) R_tgt_mean for (T, 3, 3) driver rotations."""
    delta = np.asarray(r_drv, np.float64) @ np.asarray(drv_mean, np.float64).T
    return project_to_rotation(delta @ np.asarray(tgt_mean, np.float64))


def transfer_translation(t_drv: np.ndarray, drv_mean: np.ndarray, tgt_mean: np.ndarray) -> np.ndarray:
    """Target mean + the driver's displacement scaled by mean depth ratio z_tgt / z_drv.

    A displacement dx at depth z moves the image by f dx / z: scaling by the depth ratio keeps the driver's motion
    the same fraction of the crop (and the same relative change of size for motion in depth) on the target.
    """
    drv_mean, tgt_mean = np.asarray(drv_mean, np.float64), np.asarray(tgt_mean, np.float64)
    if drv_mean[2] <= 0 or tgt_mean[2] <= 0:
        raise ValueError(f"mean depths must be positive (driver {drv_mean[2]}, target {tgt_mean[2]})")
    scale = tgt_mean[2] / drv_mean[2]
    return tgt_mean[None] + (np.asarray(t_drv, np.float64) - drv_mean[None]) * scale


def transfer_gaze(g_drv: np.ndarray, drv_mean: np.ndarray, tgt_mean: np.ndarray) -> np.ndarray:
    """Target mean gaze + the driver's deviation from its mean (degrees)."""
    return (
        np.asarray(tgt_mean, np.float64)[None] + np.asarray(g_drv, np.float64) - np.asarray(drv_mean, np.float64)[None]
    )


def smooth_sequence(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along the frame axis (sigma in frames; 0 = unchanged; edges repeat the end frames)."""
    x = np.asarray(x, np.float64)
    if sigma <= 0 or len(x) < 2:
        return x.copy()
    return gaussian_filter1d(x, sigma, axis=0, mode="nearest")


def smooth_rotations(rotations: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted chordal mean per frame: smooth the matrix entries, project back onto SO(3)."""
    if sigma <= 0 or len(rotations) < 2:
        return np.asarray(rotations, np.float64).copy()
    return project_to_rotation(smooth_sequence(rotations, sigma))


def check_expression_names(driver: Sequence[str], target: Sequence[str]) -> str | None:
    """None when the two expression spaces agree, else the reason they do not."""
    driver, target = [str(n) for n in driver], [str(n) for n in target]
    if driver == target:
        return None
    if len(driver) != len(target):
        return f"driver has {len(driver)} expression coefficients, target {len(target)}"
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(driver, target)) if a != b]
    return (
        f"expression names differ at {len(diff)} position(s), first {diff[:3]} "
        "(fitted with different morphable models?)"
    )


@dataclass
class Transferred:
    """The target's per-frame renderer inputs."""

    expression: np.ndarray  # (T, Ke) float32
    rotation: np.ndarray  # (T, 3, 3) float64
    translation: np.ndarray  # (T, 3) float64
    gaze_deg: np.ndarray  # (T, 2) float64


def transfer_motion(
    driver: Motion,
    drv: MotionStats,
    tgt: MotionStats,
    *,
    expression: str = "relative",
    pose: str = "relative",
    gaze: str = "relative",
    smoothing_sigma: float = 0.0,
) -> Transferred:
    """The driver's motion as the target's renderer inputs (then optionally smoothed over time)."""
    e = transfer_expression(driver.expression, drv.neutral_expression, tgt.neutral_expression, expression)
    if pose == "relative":
        r = transfer_rotation(driver.rotation, drv.rotation, tgt.rotation)
        t = transfer_translation(driver.translation, drv.translation, tgt.translation)
    elif pose == "absolute":
        r, t = np.asarray(driver.rotation, np.float64).copy(), np.asarray(driver.translation, np.float64).copy()
    else:
        raise ValueError(f"pose mode must be absolute or relative, got {pose!r}")
    if gaze == "relative":
        g = transfer_gaze(driver.gaze_deg, drv.gaze_deg, tgt.gaze_deg)
    elif gaze == "absolute":
        g = np.asarray(driver.gaze_deg, np.float64).copy()
    else:
        raise ValueError(f"gaze mode must be absolute or relative, got {gaze!r}")
    if smoothing_sigma > 0:
        e = np.clip(smooth_sequence(e, smoothing_sigma), 0.0, 1.0)
        r = smooth_rotations(r, smoothing_sigma)
        t = smooth_sequence(t, smoothing_sigma)
        g = smooth_sequence(g, smoothing_sigma)
    return Transferred(e.astype(np.float32), r, t, g)
