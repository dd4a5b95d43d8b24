"""Batched fit of a linear morphable model to 2D landmark tracks: one identity, per-frame expression and pose.

All frames are optimised at once (one shared identity makes them coupled, and temporal smoothness couples
neighbours), which on CPU is far faster than a per-frame loop: every iteration is a few dense matmuls over
(T, L) points. The model given is already restricted to the L correspondence vertices, so the cost does not
depend on the mesh size.

Schedule (coarse to fine):
1. per-frame rigid pose from the neutral shape by PnP (SQPnP: global, no initial guess needed);
2. pose only, all frames jointly, with the pose smoothness term (fixes PnP outliers on hard frames);
3. pose + identity + expression (+ shared focal) jointly with priors, temporal smoothness and the [0, 1] expression
   penalty; expressions are clamped afterwards.
Invalid frames contribute no data term; their parameters are filled by interpolation of the nearest valid
neighbours at the end (the smoothness terms only keep them from disturbing the optimiser meanwhile).

Pose convention: see ``camera.py`` (X_cam = R @ X_model + t, R = FLIP_YZ @ R_head).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from ..errors import PipelineInputError
from .camera import FLIP_YZ, default_intrinsics
from .config import FitConfig
from .rotation import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_axis_angle_np
from .solver import SequenceProblem, SequenceState, lm_solve, sequence_cost

__all__ = ["FitResult", "fit_sequence", "project_model_points", "blendshapes_to_expression", "interpolate_invalid"]

REFERENCE_SIZE = 512
"""Residuals enter the loss in pixels of a crop of this side, so FitConfig weights do not depend on resolution."""


@dataclass
class FitResult:
    """Fitted parameters of one sequence. Coefficient vectors have the full model's lengths (unfitted ones are 0)."""

    identity: np.ndarray  # (Ki,) float32
    expression: np.ndarray  # (T, Ke) float32
    rotation: np.ndarray  # (T, 3, 3) float32, full model -> camera rotation (flip included)
    axis_angle: np.ndarray  # (T, 3) float32, the same rotation as axis-angle (near pi for frontal faces)
    head_axis_angle: np.ndarray  # (T, 3) float32, R_head = rotation relative to frontal (small, continuous)
    translation: np.ndarray  # (T, 3) float32, model units
    intrinsics: np.ndarray  # (4,) float32 fx, fy, cx, cy in crop px
    reprojection_error_px: np.ndarray  # (T,) float32, mean over landmarks, crop px; NaN for invalid frames
    valid: np.ndarray  # (T,) bool: frames that had landmarks (the others are interpolated)
    image_size: int
    expression_names: list[str]
    loss_history: list[float] = field(default_factory=list)
    """total cost at the start and after each accepted Levenberg-Marquardt step, all stages concatenated."""
    stage_iterations: dict[str, int] = field(default_factory=dict)
    final_cost: dict[str, float] = field(default_factory=dict)
    """each cost term at the solution (before clamping / interpolation), see solver.py."""
    fit_seconds: float = float("nan")

    @property
    def n_frames(self) -> int:
        return int(self.expression.shape[0])

    def to_arrays(self, correspondence: Any | None = None) -> dict[str, np.ndarray]:
        """Arrays of the ``fit`` storage stage; ``correspondence`` (mediapipe_idx, model_vertex) adds its two."""
        out: dict[str, np.ndarray] = {
            "identity": self.identity.astype(np.float32),
            "expression": self.expression.astype(np.float32),
            "expression_names": np.asarray(self.expression_names, dtype=str),
            "rotation": self.rotation.astype(np.float32),
            "axis_angle": self.axis_angle.astype(np.float32),
            "translation": self.translation.astype(np.float32),
            "intrinsics": self.intrinsics.astype(np.float32),
            "reprojection_error_px": self.reprojection_error_px.astype(np.float32),
            "valid": self.valid.astype(bool),
        }
        if correspondence is not None:
            out["correspondence_mediapipe"] = np.asarray(correspondence.mediapipe_idx, dtype=np.int32)
            out["correspondence_vertex"] = np.asarray(correspondence.model_vertex, dtype=np.int32)
        return out


# ----------------------------------------------------------------------------------------------------- blendshapes


def _arkit_key(name: str) -> str:
    """Canonical ARKit key: MediaPipe 'eyeBlinkLeft' and ICT 'eyeBlink_L' both -> 'eyeblink_l'.

    Both sources name sides from the subject's point of view (checked on the data: ICT '_L' shapes move vertices at
    x > 0, the subject's left; MediaPipe 'eyeBlinkLeft' rises when the subject's left eye closes).
    """
    n = name.strip()
    for long, short in (("Left", "_L"), ("Right", "_R")):
        if n.endswith(long):
            n = n[: -len(long)] + short
    return n.lower()


def blendshapes_to_expression(
    blendshapes: np.ndarray, blendshape_names: Sequence[str], expression_names: Sequence[str]
) -> np.ndarray:
    """(T, B) MediaPipe blendshape scores -> (T, Ke) initial expression coefficients, matched by ARKit name.

    A side-less MediaPipe shape ('browInnerUp', 'cheekPuff') feeds both sided model shapes; model shapes with no
    ARKit counterpart (ICT's cheekRaiser, PupilDilate) get 0; '_neutral' is ignored. NaN rows (invalid frames) stay
    NaN. Scores are clipped to [0, 1].
    """
    bs = np.asarray(blendshapes, dtype=np.float32)
    if bs.ndim != 2 or bs.shape[1] != len(blendshape_names):
        raise ValueError(f"blendshapes {bs.shape} do not match {len(blendshape_names)} names")
    src = {_arkit_key(n): i for i, n in enumerate(blendshape_names) if n != "_neutral"}
    out = np.zeros((bs.shape[0], len(expression_names)), dtype=np.float32)
    for j, name in enumerate(expression_names):
        key = _arkit_key(name)
        i = src.get(key)
        if i is None and key[-2:] in ("_l", "_r"):
            i = src.get(key[:-2])
        if i is not None:
            out[:, j] = bs[:, i]
    out[~np.isfinite(bs).all(axis=1)] = np.nan
    return np.clip(out, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------- helpers


def interpolate_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation along axis 0 of the rows where ``valid`` is False; ends hold the nearest valid row."""
    v = np.array(values, dtype=np.float64, copy=True)
    ok = np.asarray(valid, dtype=bool)
    if ok.all() or not ok.any():
        return v
    t = np.arange(len(v))
    flat = v.reshape(len(v), -1)
    for k in range(flat.shape[1]):
        flat[~ok, k] = np.interp(t[~ok], t[ok], flat[ok, k])
    return flat.reshape(v.shape)


def _model_arrays(model: Any, n_identity: int, n_expression: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    neutral = np.asarray(model.neutral, dtype=np.float64)
    id_basis = np.asarray(model.identity_basis, dtype=np.float64)
    exp_basis = np.asarray(model.expression_basis, dtype=np.float64)
    ki = min(n_identity, id_basis.shape[0])
    ke = exp_basis.shape[0] if n_expression is None else min(n_expression, exp_basis.shape[0])
    return neutral, id_basis[:ki], exp_basis[:ke]


def _pnp_init(
    shapes: np.ndarray, points2d: np.ndarray, mask: np.ndarray, intrinsics: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame SQPnP of model shapes (T, L, 3) on 2D points: returns head axis-angle (T, 3), t (T, 3), ok (T,)."""
    t_count = shapes.shape[0]
    k = np.array([[intrinsics[0], 0, intrinsics[2]], [0, intrinsics[1], intrinsics[3]], [0, 0, 1]], dtype=np.float64)
    aa_head = np.zeros((t_count, 3))
    trans = np.zeros((t_count, 3))
    ok = np.zeros(t_count, dtype=bool)
    use = weights > 0
    for i in range(t_count):
        m = mask[i] & use
        if m.sum() < 6:
            continue
        obj = np.ascontiguousarray(shapes[i, m], dtype=np.float64)
        img = np.ascontiguousarray(points2d[i, m], dtype=np.float64)
        try:
            good, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
        except cv2.error:
            continue
        if not good or not np.all(np.isfinite(tvec)) or tvec[2, 0] <= 0:
            continue
        r_full, _ = cv2.Rodrigues(rvec)
        aa_head[i] = matrix_to_axis_angle_np(FLIP_YZ @ r_full)
        trans[i] = tvec[:, 0]
        ok[i] = True
    return aa_head, trans, ok


# ----------------------------------------------------------------------------------------------------- fit


def fit_sequence(
    points2d: np.ndarray,
    valid: np.ndarray,
    model: Any,
    image_size: int,
    cfg: FitConfig | None = None,
    init_expression: np.ndarray | None = None,
    point_weights: np.ndarray | None = None,
    device: str | None = None,
) -> FitResult:
    """Fit identity, per-frame expression and pose to 2D landmarks of all frames at once.

    points2d: (T, L, 2) crop pixels of the L correspondence landmarks (NaN allowed; NaN points are ignored).
    valid: (T,) frames that have landmarks; others are filled by interpolation.
    model: LinearMorphableModel restricted to the L correspondence vertices (``model.subset(corr.model_vertex)``).
    init_expression: (T, Ke) start values (e.g. ``blendshapes_to_expression``), used if cfg.init_from_blendshapes.
    point_weights: (L,) per-correspondence weights (``Correspondence.weight``); default all ones.
    device: overrides cfg.device.
    """
    cfg = cfg or FitConfig()
    t0 = time.perf_counter()
    pts = np.asarray(points2d, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[2] != 2:
        raise ValueError(f"points2d must be (T, L, 2), got {pts.shape}")
    n_frames, n_points = pts.shape[:2]
    valid_in = np.asarray(valid, dtype=bool).reshape(-1)
    if valid_in.shape[0] != n_frames:
        raise ValueError(f"valid has {valid_in.shape[0]} frames, points2d {n_frames}")
    neutral, id_basis, exp_basis = _model_arrays(model, cfg.n_identity, cfg.n_expression)
    if neutral.shape[0] != n_points:
        raise ValueError(f"model has {neutral.shape[0]} vertices but points2d has {n_points} landmarks; "
                         "pass model.subset(correspondence.model_vertex)")
    ki_full = int(np.asarray(model.identity_basis).shape[0])
    ke_full = int(np.asarray(model.expression_basis).shape[0])
    ki, ke = id_basis.shape[0], exp_basis.shape[0]
    w = np.ones(n_points) if point_weights is None else np.asarray(point_weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n_points or np.any(w < 0) or not np.any(w > 0):
        raise ValueError("point_weights must be (L,), non-negative, not all zero")

    point_ok = np.isfinite(pts).all(axis=2) & valid_in[:, None]
    frame_ok = point_ok[:, w > 0].sum(axis=1) >= 6
    if not frame_ok.any():
        raise PipelineInputError(None, "no frame has enough valid landmarks to fit the morphable model")
    point_ok &= frame_ok[:, None]

    intr = default_intrinsics(image_size, cfg.focal_factor)

    # expression start
    beta0 = np.zeros((n_frames, ke))
    if init_expression is not None and cfg.init_from_blendshapes:
        ie = np.asarray(init_expression, dtype=np.float64)
        if ie.shape != (n_frames, ke_full) and ie.shape != (n_frames, ke):
            raise ValueError(f"init_expression must be (T, Ke) = ({n_frames}, {ke_full}), got {ie.shape}")
        ie = ie[:, :ke]
        row_ok = np.isfinite(ie).all(axis=1)
        beta0 = np.nan_to_num(interpolate_invalid(ie, row_ok), nan=0.0) if row_ok.any() else beta0
        if cfg.expression_bounds is not None:
            beta0 = np.clip(beta0, *cfg.expression_bounds)

    # pose start: PnP of the neutral identity with the start expression, then interpolate failures
    shapes0 = neutral[None] + np.einsum("tk,kvc->tvc", beta0, exp_basis)
    aa0, tr0, pnp_ok = _pnp_init(shapes0, np.nan_to_num(pts), point_ok, intr, w)
    if not pnp_ok.any():
        raise PipelineInputError(None, "pose initialisation (PnP) failed on every frame")
    aa0 = interpolate_invalid(aa0, pnp_ok)
    tr0 = interpolate_invalid(tr0, pnp_ok)

    # optimisation (solver.py), float64 state; Jacobian products in cfg.jacobian_dtype
    dev = torch.device(device or cfg.device)
    f64 = torch.float64
    prev_threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    try:
        def tt(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=f64, device=dev)

        scale = REFERENCE_SIZE / float(image_size)
        wm = point_ok * w[None, :]
        sqrt_w = np.sqrt(cfg.w_landmark * wm / wm.sum())
        prob = SequenceProblem(
            target=tt(np.nan_to_num(pts) * scale),
            sqrt_w=tt(sqrt_w),
            neutral=tt(neutral),
            id_basis=tt(id_basis.transpose(1, 2, 0)),
            exp_basis=tt(exp_basis.transpose(1, 2, 0)),
            focal=float(intr[0] * scale),
            center=(float(intr[2] * scale), float(intr[3] * scale)),
            w_identity=cfg.w_identity_prior,
            w_expression=cfg.w_expression_prior,
            w_expression_smooth=cfg.w_expression_smooth,
            w_expression_smooth2=cfg.w_expression_smooth2,
            w_rotation_smooth=cfg.w_rotation_smooth,
            w_translation_smooth=cfg.w_translation_smooth,
            bounds=cfg.expression_bounds,
            w_bounds=cfg.w_expression_bounds,
            optimize_focal=cfg.optimize_focal,
            chunk_frames=cfg.chunk_frames,
        )
        state = SequenceState(
            identity=torch.zeros(ki, dtype=f64, device=dev),
            expression=tt(beta0),
            rotation=axis_angle_to_matrix(tt(aa0)),
            translation=tt(tr0),
            log_focal=torch.zeros((), dtype=f64, device=dev),
        )
        jac_dtype = torch.float32 if cfg.jacobian_dtype == "float32" else torch.float64
        history: list[float] = []
        stages: dict[str, int] = {}
        state, stages["pose"] = lm_solve(prob, state, cfg.iterations_pose, tolerance=cfg.tolerance,
                                         freeze_shape=True, jac_dtype=jac_dtype, history=history)
        state, stages["joint"] = lm_solve(prob, state, cfg.iterations_joint, tolerance=cfg.tolerance,
                                          jac_dtype=jac_dtype, history=history)
        final_cost = sequence_cost(prob, state)
        alpha_np = state.identity.cpu().numpy()
        beta_np = state.expression.cpu().numpy()
        aa_np = matrix_to_axis_angle(state.rotation).cpu().numpy()
        tr_np = state.translation.cpu().numpy()
        intr_np = intr.copy()
        intr_np[:2] *= float(torch.exp(state.log_focal))
    finally:
        if cfg.num_threads:
            torch.set_num_threads(prev_threads)

    if cfg.expression_bounds is not None:
        beta_np = np.clip(beta_np, *cfg.expression_bounds)
    beta_np = interpolate_invalid(beta_np, frame_ok)
    aa_np = interpolate_invalid(aa_np, frame_ok)
    tr_np = interpolate_invalid(tr_np, frame_ok)

    identity = np.zeros(ki_full)
    identity[:ki] = alpha_np
    expression = np.zeros((n_frames, ke_full))
    expression[:, :ke] = beta_np
    r_head = axis_angle_to_matrix(torch.from_numpy(aa_np)).numpy()
    rotation = FLIP_YZ[None] @ r_head
    axis_angle = matrix_to_axis_angle_np(rotation)

    # reprojection error of the final (clamped) parameters, unweighted mean over the frame's landmarks
    verts = neutral[None] + np.einsum("k,kvc->vc", alpha_np, id_basis)[None] + np.einsum("tk,kvc->tvc", beta_np, exp_basis)
    uv = _project_np(verts, rotation, tr_np, intr_np)
    err = np.linalg.norm(uv - pts, axis=2)
    err = np.where(point_ok, err, np.nan)
    frame_err = np.full(n_frames, np.nan)
    frame_err[frame_ok] = np.nanmean(err[frame_ok], axis=1)

    names = [str(n) for n in getattr(model, "expression_names", [f"exp{i:03d}" for i in range(ke_full)])]
    return FitResult(
        identity=identity.astype(np.float32),
        expression=expression.astype(np.float32),
        rotation=rotation.astype(np.float32),
        axis_angle=axis_angle.astype(np.float32),
        head_axis_angle=aa_np.astype(np.float32),
        translation=tr_np.astype(np.float32),
        intrinsics=intr_np.astype(np.float32),
        reprojection_error_px=frame_err.astype(np.float32),
        valid=frame_ok,
        image_size=int(image_size),
        expression_names=names,
        loss_history=history,
        final_cost=final_cost,
        stage_iterations=stages,
        fit_seconds=time.perf_counter() - t0,
    )


def _project_np(verts: np.ndarray, rotation: np.ndarray, translation: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    cam = np.einsum("tij,tvj->tvi", rotation, verts) + translation[:, None, :]
    fx, fy, cx, cy = intrinsics
    return np.stack([fx * cam[..., 0] / cam[..., 2] + cx, fy * cam[..., 1] / cam[..., 2] + cy], axis=-1)


def project_model_points(
    model: Any,
    identity: np.ndarray,
    expression: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    intrinsics: np.ndarray,
    vertex_indices: np.ndarray | None = None,
) -> np.ndarray:
    """(T, N, 2) crop pixels of model vertices (all, or ``vertex_indices``) for fitted parameters (QC overlays).

    Works with the full model or a subset; coefficient vectors may be shorter than the bases (missing ones are 0).
    Pass a few frames at a time for the full mesh (T x V x 3 floats).
    """
    idx = slice(None) if vertex_indices is None else np.asarray(vertex_indices, dtype=np.int64)
    neutral = np.asarray(model.neutral, dtype=np.float64)[idx]
    id_basis = np.asarray(model.identity_basis, dtype=np.float32)[:, idx]
    exp_basis = np.asarray(model.expression_basis, dtype=np.float32)[:, idx]
    a = np.asarray(identity, dtype=np.float64).reshape(-1)
    e = np.atleast_2d(np.asarray(expression, dtype=np.float64))
    shape = neutral + np.tensordot(a, id_basis[: a.shape[0]], axes=1)
    verts = shape[None] + np.tensordot(e, exp_basis[: e.shape[1]], axes=1)
    rot = np.asarray(rotation, dtype=np.float64).reshape(-1, 3, 3)
    tr = np.asarray(translation, dtype=np.float64).reshape(-1, 3)
    return _project_np(verts, rot, tr, np.asarray(intrinsics, dtype=np.float64))
