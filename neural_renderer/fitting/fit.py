"""Fit of a linear morphable model to 2D landmark tracks: one identity, per-frame expression and pose.

Schedule (coarse to fine), each optimisation a structured Levenberg-Marquardt (``solver.py``) over many frames at
once rather than a per-frame loop:
1. per-frame rigid pose of the mean face (with the start expression) by PnP (SQPnP: global, no initial guess);
2. key frames (up to ``cfg.identity_frames``, evenly spaced over the valid frames): identity (+ focal) shared,
   pose and expression per frame, no smoothness. Identity is a per-video constant, so a subset pins it down as
   well as all frames do, at a fraction of the cost;
3. all frames, identity fixed: pose and expression with priors and temporal smoothness, started from the key
   frames' values interpolated over time. Frames are then coupled only through smoothness (a banded system), the
   cheapest kind of step.
Between 2 and 3, a per-video correspondence refinement (``refine_correspondence``, ``cfg.refine_radius`` > 0) lets
each landmark's vertex slide to a better one for this face, and the key frames are fitted again.
Invalid frames contribute no data term; their parameters are interpolated from the nearest valid frames at the end.

Pose convention: see ``camera.py`` (X_cam = R @ X_model + t, R = FLIP_YZ @ R_head).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import scipy.spatial
import torch

from ..device import resolve_device
from ..errors import PipelineInputError
from ..progress import progress
from .camera import FLIP_YZ, default_intrinsics, project_points_np
from .config import FitConfig
from .rotation import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_axis_angle_np
from .solver import SequenceProblem, SequenceState, lm_solve, sequence_cost

__all__ = [
    "FitResult",
    "fit_sequence_refined",
    "refine_correspondence",
    "project_model_points",
    "fitted_landmarks_68",
    "blendshapes_to_expression",
    "blendshape_matched",
    "interpolate_invalid",
    "select_keyframes",
]

REFERENCE_SIZE = 512
"""Residuals enter the cost in pixels of a crop of this side, so FitConfig weights do not depend on resolution."""


@dataclass
class FitResult:
    """Fitted parameters of one sequence. Coefficient vectors have the full model's lengths (unfitted ones are 0)."""

    identity: np.ndarray  # (Ki,) float32
    expression: np.ndarray  # (T, Ke) float32
    rotation: np.ndarray  # (T, 3, 3) float32, full model -> camera rotation (flip included)
    axis_angle: np.ndarray  # (T, 3) float32, the same rotation as axis-angle (near pi for frontal faces)
    head_axis_angle: np.ndarray  # (T, 3) float32, R_head = FLIP_YZ @ rotation: relative to frontal, small, smooth
    translation: np.ndarray  # (T, 3) float32, model units
    intrinsics: np.ndarray  # (4,) float32 fx, fy, cx, cy in crop px
    reprojection_error_px: np.ndarray  # (T,) float32, mean over landmarks, crop px; NaN for invalid frames
    valid: np.ndarray  # (T,) bool: frames that had landmarks (the others are interpolated)
    image_size: int
    expression_names: list[str]
    model_vertex: np.ndarray | None = None
    """(L,) vertex of each correspondence actually used (the refined ones; None: as given)."""
    keyframes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    loss_history: list[float] = field(default_factory=list)
    """total cost at the start of each stage and after each accepted step, all stages concatenated."""
    stage_iterations: dict[str, int] = field(default_factory=dict)
    final_cost: dict[str, float] = field(default_factory=dict)
    """each cost term of the last stage at its solution (before interpolation), see solver.py."""
    fit_seconds: float = float("nan")
    landmarks_68: np.ndarray | None = None
    """(T, 68, 2) float32 crop px: the model's Multi-PIE landmarks projected with the fitted parameters (every frame,
    interpolated ones too); None when the model has no 68-point embedding."""

    @property
    def n_frames(self) -> int:
        return int(self.expression.shape[0])

    def to_arrays(self, correspondence: Any | None = None) -> dict[str, np.ndarray]:
        """Arrays of the ``fit`` storage stage.

        ``correspondence`` (with mediapipe_idx, model_vertex) adds correspondence_mediapipe / correspondence_vertex;
        the vertices are the refined ones (``model_vertex``) when the result has them.
        """
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
            vertex = correspondence.model_vertex if self.model_vertex is None else self.model_vertex
            out["correspondence_mediapipe"] = np.asarray(correspondence.mediapipe_idx, dtype=np.int32)
            out["correspondence_vertex"] = np.asarray(vertex, dtype=np.int32)
        if self.landmarks_68 is not None:
            out["landmarks_68"] = self.landmarks_68.astype(np.float32)
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
    out = np.zeros((bs.shape[0], len(expression_names)), dtype=np.float32)
    for j, i in enumerate(_blendshape_sources(blendshape_names, expression_names)):
        if i >= 0:
            out[:, j] = bs[:, i]
    out[~np.isfinite(bs).all(axis=1)] = np.nan
    return np.clip(out, 0.0, 1.0)


def _blendshape_sources(blendshape_names: Sequence[str], expression_names: Sequence[str]) -> np.ndarray:
    """(Ke,) index of each model shape's tracker blendshape (ARKit name, side-less feeds both sides), -1 if none."""
    src = {_arkit_key(n): i for i, n in enumerate(blendshape_names) if n != "_neutral"}
    out = np.full(len(expression_names), -1, dtype=np.int64)
    for j, name in enumerate(expression_names):
        key = _arkit_key(name)
        i = src.get(key)
        if i is None and key[-2:] in ("_l", "_r"):
            i = src.get(key[:-2])
        out[j] = -1 if i is None else i
    return out


def blendshape_matched(blendshape_names: Sequence[str], expression_names: Sequence[str]) -> np.ndarray:
    """(Ke,) bool: the model shapes that ``blendshapes_to_expression`` fills from a tracker blendshape."""
    return _blendshape_sources(blendshape_names, expression_names) >= 0


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


def select_keyframes(valid: np.ndarray, count: int) -> np.ndarray:
    """Indices of up to ``count`` valid frames spread evenly over the valid ones (all of them if fewer)."""
    idx = np.flatnonzero(np.asarray(valid, dtype=bool))
    if count <= 0 or len(idx) <= count:
        return idx
    return idx[np.unique(np.round(np.linspace(0, len(idx) - 1, count)).astype(np.int64))]


def _identity_shape(neutral: np.ndarray, identity_basis: np.ndarray, identity: np.ndarray) -> np.ndarray:
    """s = s_0 + sum_k alpha_k I_k: (N, 3) neutral-expression shape of the identity coefficients (the first
    len(alpha) of the (Ki, N, 3) basis)."""
    a = np.asarray(identity, dtype=np.float64)
    return neutral + np.tensordot(a, identity_basis[: len(a)], axes=1)


def _project(
    shape: np.ndarray,
    expression_basis: np.ndarray,
    expression: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    intrinsics: np.ndarray,
) -> np.ndarray:
    """The model -> camera -> image step: u_tv = pi_K(R_t (s_v + sum_k beta_tk E_kv) + t_t), (T, N, 2) crop px.

    shape (N, 3) (``_identity_shape``), expression_basis (Ke, N, 3), expression (T, Ke), rotation (T, 3, 3) full
    model -> camera (flip included), translation (T, 3), intrinsics (4,) fx, fy, cx, cy.
    """
    verts = shape[None] + np.tensordot(expression, expression_basis, axes=1)
    cam = np.einsum("tij,tvj->tvi", rotation, verts) + translation[:, None, :]
    return project_points_np(cam, intrinsics)


@dataclass(frozen=True)
class _Data:
    """Validated inputs of one fit, in the model's restricted bases (numpy, float64; the points as given, float32
    or float64: a float32 value is exact in the float64 maths)."""

    pts: np.ndarray  # (T, L, 2) crop px, NaN allowed
    point_ok: np.ndarray  # (T, L)
    frame_ok: np.ndarray  # (T,)
    weights: np.ndarray  # (L,)
    neutral: np.ndarray  # (L, 3)
    id_basis: np.ndarray  # (Ki, L, 3)
    exp_basis: np.ndarray  # (Ke, L, 3)
    ki_full: int
    ke_full: int
    expression_names: list[str]
    beta0: np.ndarray  # (T, Ke) start expressions
    image_size: int
    prior_target: np.ndarray | None = None  # (T, Ke) blendshape prior b (the start expressions), None: no prior
    prior_weight: np.ndarray | None = None  # (Ke,) its weights (0 where the model shape has no tracker blendshape)


def _prepare(
    points2d, valid, model, image_size: int, cfg: FitConfig, init_expression, point_weights, init_matched=None
) -> _Data:
    pts = np.asarray(points2d)
    pts = pts.astype(np.result_type(pts.dtype, np.float32), copy=False)  # float32 tracks stay float32 (half the memory)
    if pts.ndim != 3 or pts.shape[2] != 2:
        raise ValueError(f"points2d must be (T, L, 2), got {pts.shape}")
    n_frames, n_points = pts.shape[:2]
    valid_in = np.asarray(valid, dtype=bool).reshape(-1)
    if valid_in.shape[0] != n_frames:
        raise ValueError(f"valid has {valid_in.shape[0]} frames, points2d {n_frames}")
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    neutral = np.asarray(model.neutral, dtype=np.float64)
    id_full = np.asarray(model.identity_basis)
    exp_full = np.asarray(model.expression_basis)
    if neutral.shape[0] != n_points:
        raise ValueError(f"{neutral.shape[0]} correspondence vertices but points2d has {n_points} landmarks")
    ki = min(cfg.n_identity, id_full.shape[0])
    ke = exp_full.shape[0] if cfg.n_expression is None else min(cfg.n_expression, exp_full.shape[0])
    w = np.ones(n_points) if point_weights is None else np.asarray(point_weights, dtype=np.float64).reshape(-1)
    if w.shape[0] != n_points or np.any(w < 0) or not np.any(w > 0):
        raise ValueError("point_weights must be (L,), non-negative, not all zero")
    point_ok = np.isfinite(pts).all(axis=2) & valid_in[:, None] & (w > 0)[None, :]
    frame_ok = point_ok.sum(axis=1) >= 6
    if not frame_ok.any():
        raise PipelineInputError(None, "no frame has enough valid landmarks (>= 6) to fit the morphable model")
    point_ok &= frame_ok[:, None]

    beta0 = np.zeros((n_frames, ke))
    prior_target = prior_weight = None
    if init_expression is not None and cfg.init_from_blendshapes:
        ie = np.asarray(init_expression, dtype=np.float64)
        if ie.ndim != 2 or ie.shape[0] != n_frames or ie.shape[1] not in (ke, exp_full.shape[0]):
            raise ValueError(f"init_expression must be (T, Ke) = ({n_frames}, {exp_full.shape[0]}), got {ie.shape}")
        ie = ie[:, :ke]
        row_ok = np.isfinite(ie).all(axis=1)
        if row_ok.any():
            beta0 = interpolate_invalid(np.where(row_ok[:, None], ie, 0.0), row_ok)
            if cfg.w_blendshape_prior > 0:
                m = np.ones(ke) if init_matched is None else np.asarray(init_matched, dtype=np.float64)[:ke]
                prior_weight = cfg.w_blendshape_prior * m
    if cfg.expression_bounds is not None:
        beta0 = np.clip(beta0, *cfg.expression_bounds)
    if prior_weight is not None:
        prior_target = beta0
    names = getattr(model, "expression_names", None) or [f"expression{i:03d}" for i in range(len(exp_full))]
    extra = np.array([cfg.w_expression_prior_extra.get(str(n), 0.0) for n in names[:ke]])
    if extra.any():  # w (b - x)^2 + c x^2 = (w + c) (w b / (w + c) - x)^2 + const: one term of the solver's form
        w_b = np.zeros(ke) if prior_weight is None else prior_weight
        b = np.zeros((n_frames, ke)) if prior_target is None else prior_target
        prior_weight = w_b + extra
        prior_target = np.where(prior_weight > 0, w_b * b / np.where(prior_weight > 0, prior_weight, 1.0), 0.0)
    return _Data(
        pts=pts,
        point_ok=point_ok,
        frame_ok=frame_ok,
        weights=w,
        neutral=neutral,
        id_basis=np.asarray(id_full[:ki], dtype=np.float64),
        exp_basis=np.asarray(exp_full[:ke], dtype=np.float64),
        ki_full=int(id_full.shape[0]),
        ke_full=int(exp_full.shape[0]),
        expression_names=[str(n) for n in names],
        beta0=beta0,
        image_size=int(image_size),
        prior_target=prior_target,
        prior_weight=prior_weight,
    )


def _problem(data: _Data, cfg: FitConfig, dev: torch.device) -> SequenceProblem:
    """All frames as one temporal problem, in the 512 px reference frame."""
    scale = REFERENCE_SIZE / float(data.image_size)
    intr = default_intrinsics(data.image_size, cfg.focal_factor) * scale
    wm = data.point_ok * data.weights[None, :]

    def tt(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64, device=dev)

    return SequenceProblem(
        # the points' own dtype: float32 tracks are exact in float64 maths (scale is a power of 2), at half the memory
        target=torch.as_tensor(np.ascontiguousarray(np.nan_to_num(data.pts) * scale), device=dev),
        sqrt_w=tt(np.sqrt(cfg.w_landmark * wm / wm.sum())),
        neutral=tt(data.neutral),
        id_basis=tt(data.id_basis.transpose(1, 2, 0)),
        exp_basis=tt(data.exp_basis.transpose(1, 2, 0)),
        focal=float(intr[0]),
        center=(float(intr[2]), float(intr[3])),
        w_identity=cfg.w_identity_prior,
        w_expression=cfg.w_expression_prior,
        w_expression_smooth=cfg.w_expression_smooth,
        w_expression_smooth2=cfg.w_expression_smooth2,
        w_rotation_smooth=cfg.w_rotation_smooth,
        w_translation_smooth=cfg.w_translation_smooth,
        bounds=cfg.expression_bounds,
        temporal=True,
        expression_target=None if data.prior_target is None else tt(data.prior_target),
        w_expression_target=None if data.prior_weight is None else tt(data.prior_weight),
        chunk_frames=cfg.chunk_frames,
    )


def _intrinsics(data: _Data, cfg: FitConfig, log_focal: float) -> np.ndarray:
    intr = default_intrinsics(data.image_size, cfg.focal_factor)
    intr[:2] *= float(np.exp(log_focal))
    return intr


def _pnp_state(data: _Data, cfg: FitConfig, frames: np.ndarray, dev: torch.device) -> SequenceState:
    """Start state of (valid) ``frames``: mean identity, start expressions, per-frame SQPnP pose of that shape.

    SQPnP is a global solver (no initial guess); a frame where it fails takes its neighbours' pose.
    """
    intr = _intrinsics(data, cfg, 0.0)
    k = np.array([[intr[0], 0, intr[2]], [0, intr[1], intr[3]], [0, 0, 1]], dtype=np.float64)
    expression = data.beta0[frames]
    aa = np.zeros((len(frames), 3))
    trans = np.zeros((len(frames), 3))
    ok = np.zeros(len(frames), dtype=bool)
    for j, i in enumerate(frames):
        m = data.point_ok[i]
        obj = np.ascontiguousarray(data.neutral[m] + np.tensordot(expression[j], data.exp_basis[:, m], axes=1))
        img = np.ascontiguousarray(data.pts[i, m], dtype=np.float64)
        try:
            good, rvec, tvec = cv2.solvePnP(obj, img, k, None, flags=cv2.SOLVEPNP_SQPNP)
        except cv2.error:
            continue
        if not good or not np.all(np.isfinite(tvec)) or tvec[2, 0] <= 0:
            continue
        aa[j] = matrix_to_axis_angle_np(FLIP_YZ @ cv2.Rodrigues(rvec)[0])
        trans[j] = tvec[:, 0]
        ok[j] = True
    if not ok.any():
        raise PipelineInputError(None, "pose initialisation (PnP) failed on every frame")
    f64 = torch.float64
    return SequenceState(
        identity=torch.zeros(data.id_basis.shape[0], dtype=f64, device=dev),
        expression=torch.as_tensor(expression, dtype=f64, device=dev),
        rotation=axis_angle_to_matrix(torch.as_tensor(interpolate_invalid(aa, ok), dtype=f64, device=dev)),
        translation=torch.as_tensor(interpolate_invalid(trans, ok), dtype=f64, device=dev),
        log_focal=torch.tensor(0.0, dtype=f64, device=dev),
    )


def _jac_dtype(cfg: FitConfig) -> torch.dtype:
    return torch.float32 if cfg.jacobian_dtype == "float32" else torch.float64


def _fit_keyframes(
    data: _Data,
    cfg: FitConfig,
    dev: torch.device,
    start: SequenceState | None,
    keyframes: np.ndarray,
    iterations: int,
    history: list[float],
) -> tuple[SequenceState, int]:
    """Stage 2: identity (+ focal) shared over the key frames; returns the key-frame state."""
    prob = _problem(data, cfg, dev).frames(keyframes)
    if start is None:
        start = _pnp_state(data, cfg, keyframes, dev)
    return lm_solve(
        prob,
        start,
        iterations,
        optimize_identity=True,
        optimize_focal=cfg.optimize_focal,
        tolerance=cfg.tolerance,
        jac_dtype=_jac_dtype(cfg),
        history=history,
    )


def window_bounds(n_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """[start, stop) of the windows stage 3 solves: one window when ``n_frames <= window``, else the fewest windows of
    at most ``window`` frames whose neighbours share at least ``overlap``, all of one size and evenly spaced (so no
    window is solved twice over: 3,000 frames in windows of 1,000 overlapping by 100 make 4 windows of 825)."""
    if n_frames <= window:
        return [(0, n_frames)]
    count = -(-(n_frames - overlap) // (window - overlap))
    size = -(-(n_frames + (count - 1) * overlap) // count)
    starts = [round(i * (n_frames - size) / (count - 1)) for i in range(count)]
    return [(s, s + size) for s in starts]


def _fit_all_frames(
    data: _Data,
    cfg: FitConfig,
    dev: torch.device,
    key_state: SequenceState,
    keyframes: np.ndarray,
    history: list[float],
) -> tuple[SequenceState, dict[str, int], dict[str, float]]:
    """Stage 3: identity fixed, all frames with smoothness, in overlapping windows of ``cfg.window_frames``.

    Start: key frames keep their stage-2 values, the frames between them get linearly interpolated expression, head
    rotation (axis-angle, small) and translation. (Measured on d6: one iteration fewer and a slightly lower final
    cost than a fresh per-frame PnP start with the fitted identity.)

    Why windows: with identity fixed, frames are coupled only to their neighbours (t +- 2), so a frame's solution
    depends on frames far away only through a chain of smoothness terms whose pull fades within tens of frames. Each
    window minimises the whole cost's terms within it (``SequenceProblem.window``) and starts its overlap from the
    previous window's solution; across an overlap the result fades linearly from one window's solution to the next,
    so the seams are continuous. The Gauss-Newton system (~0.2 MB per frame) then never holds more than one window:
    the fit's memory does not grow with the video (docs/SCALE.md). A video of at most ``window_frames`` frames is
    one window, exactly the whole-sequence solve.
    """
    n_frames = data.pts.shape[0]
    is_key = np.zeros(n_frames, dtype=bool)
    is_key[keyframes] = True

    def spread(values: torch.Tensor) -> np.ndarray:
        full = np.zeros((n_frames,) + tuple(values.shape[1:]))
        full[keyframes] = values.cpu().numpy()
        return interpolate_invalid(full, is_key)

    # running solution (small: T x (Ke + 6) floats), started from the key frames
    expression = spread(key_state.expression)
    head_aa = spread(matrix_to_axis_angle(key_state.rotation))
    translation = spread(key_state.translation)
    prob = _problem(data, cfg, dev)

    def as_state(sl: slice) -> SequenceState:
        def tt(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a[sl], dtype=torch.float64, device=dev)

        return SequenceState(
            identity=key_state.identity,
            expression=tt(expression),
            rotation=axis_angle_to_matrix(tt(head_aa)),
            translation=tt(translation),
            log_focal=key_state.log_focal,
        )

    windows = window_bounds(n_frames, cfg.window_frames, cfg.window_overlap)
    if len(windows) == 1:
        state, its = lm_solve(
            prob,
            as_state(slice(None)),
            cfg.iterations_sequence,
            optimize_identity=False,
            tolerance=cfg.tolerance,
            jac_dtype=_jac_dtype(cfg),
            history=history,
        )
        return state, {"sequence": its}, sequence_cost(prob, state)
    history.append(sequence_cost(prob, as_state(slice(None)))["total"])
    iterations = 0
    solved_to = 0  # frames before this hold a window's solution
    for start, stop in windows:
        solved, its = lm_solve(
            prob.window(start, stop),
            as_state(slice(start, stop)),
            cfg.iterations_sequence,
            optimize_identity=False,
            tolerance=cfg.tolerance,
            jac_dtype=_jac_dtype(cfg),
        )
        iterations = max(iterations, its)
        new = (
            solved.expression.cpu().numpy(),
            matrix_to_axis_angle(solved.rotation).cpu().numpy(),
            solved.translation.cpu().numpy(),
        )
        fade = np.ones(stop - start)  # weight of this window's solution: 0 -> 1 across the overlap
        shared = max(solved_to - start, 0)
        fade[:shared] = (np.arange(shared) + 0.5) / shared
        for whole, part in zip((expression, head_aa, translation), new):
            w = fade.reshape((-1,) + (1,) * (part.ndim - 1))
            whole[start:stop] = w * part + (1.0 - w) * whole[start:stop]
        solved_to = stop
    state = as_state(slice(None))
    final = sequence_cost(prob, state)
    history.append(final["total"])
    return state, {"sequence": iterations, "sequence_windows": len(windows)}, final


def _result(
    data: _Data,
    cfg: FitConfig,
    state: SequenceState,
    keyframes: np.ndarray,
    t0: float,
    history: list[float],
    stages: dict[str, int],
    final_cost: dict[str, float],
    model_vertex: np.ndarray | None,
) -> FitResult:
    ok = data.frame_ok
    n_frames = len(ok)
    alpha = state.identity.cpu().numpy()
    beta = state.expression.cpu().numpy()
    if cfg.expression_bounds is not None:
        beta = np.clip(beta, *cfg.expression_bounds)
    beta = interpolate_invalid(beta, ok)
    head_aa = interpolate_invalid(matrix_to_axis_angle_np(state.rotation.cpu().numpy()), ok)
    trans = interpolate_invalid(state.translation.cpu().numpy(), ok)
    intr = _intrinsics(data, cfg, float(state.log_focal))
    rotation = FLIP_YZ[None] @ axis_angle_to_matrix(torch.from_numpy(head_aa)).numpy()

    # reprojection error of the final parameters: unweighted mean over the frame's landmarks, crop px (a chunk of
    # frames at a time: the projected points of a long video would be its largest array)
    shape = _identity_shape(data.neutral, data.id_basis, alpha)
    frame_err = np.full(n_frames, np.nan)
    for start in range(0, n_frames, cfg.chunk_frames):
        sl = slice(start, start + cfg.chunk_frames)
        uv = _project(shape, data.exp_basis, beta[sl], rotation[sl], trans[sl], intr)
        err = np.where(data.point_ok[sl], np.linalg.norm(uv - data.pts[sl], axis=2), np.nan)
        rows = np.flatnonzero(ok[sl])
        frame_err[start + rows] = np.nanmean(err[rows], axis=1)

    identity = np.zeros(data.ki_full)
    identity[: len(alpha)] = alpha
    expression = np.zeros((n_frames, data.ke_full))
    expression[:, : beta.shape[1]] = beta
    return FitResult(
        identity=identity.astype(np.float32),
        expression=expression.astype(np.float32),
        rotation=rotation.astype(np.float32),
        axis_angle=matrix_to_axis_angle_np(rotation).astype(np.float32),
        head_axis_angle=head_aa.astype(np.float32),
        translation=trans.astype(np.float32),
        intrinsics=intr.astype(np.float32),
        reprojection_error_px=frame_err.astype(np.float32),
        valid=ok.copy(),
        image_size=data.image_size,
        expression_names=data.expression_names,
        model_vertex=None if model_vertex is None else np.asarray(model_vertex, dtype=np.int64),
        keyframes=keyframes,
        loss_history=history,
        stage_iterations=stages,
        final_cost=final_cost,
        fit_seconds=time.perf_counter() - t0,
    )


class _Threads:
    """Set torch's intra-op thread count for a block (restored after); None leaves it alone."""

    def __init__(self, n: int | None):
        self.n, self.prev = n, None

    def __enter__(self):
        if self.n:
            self.prev = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.prev is not None:
            torch.set_num_threads(self.prev)


# ----------------------------------------------------------------------------------------------------- fit


def refine_correspondence(
    model: Any,
    model_vertex: np.ndarray,
    points2d: np.ndarray,
    point_ok: np.ndarray,
    identity: np.ndarray,
    expression: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    intrinsics: np.ndarray,
    radius: float,
) -> np.ndarray:
    """Per-video correspondence refinement: move each landmark's vertex to the best one within ``radius``.

    For landmark l, the candidates are the vertices of the fitted identity's mesh within ``radius`` (model units)
    of its current vertex; the one with the least mean squared reprojection error over the given frames wins.
    Why: a generic MediaPipe <-> model correspondence is off by a few millimetres on a given face (eyelid creases,
    brows, jaw line); left alone, expressions absorb the error (e.g. eyeWide pinned at its bound), and the errors
    are mostly constant per landmark (a bias, not noise), which is what a per-video choice can remove.
    Inputs are for K frames: points2d (K, L, 2), point_ok (K, L), expression (K, Ke), rotation (K, 3, 3) full,
    translation (K, 3); ``model`` is the FULL model. Returns (L,) vertex indices.
    """
    mv = np.asarray(model_vertex, dtype=np.int64)
    neutral = np.asarray(model.neutral, dtype=np.float64)
    id_basis = np.asarray(model.identity_basis)
    exp_basis = np.asarray(model.expression_basis)
    shape = _identity_shape(neutral, id_basis, identity)
    neighbours = scipy.spatial.cKDTree(shape).query_ball_point(shape[mv], r=float(radius))
    cand = np.unique(np.concatenate([np.asarray(n, dtype=np.int64) for n in neighbours] + [mv]))
    e = np.asarray(expression, dtype=np.float64)
    rot, tr = np.asarray(rotation, dtype=np.float64), np.asarray(translation)
    uv = _project(shape[cand], exp_basis[: e.shape[1], cand], e, rot, tr, intrinsics)  # (K, C, 2)
    pos = {int(v): i for i, v in enumerate(cand)}
    pts = np.asarray(points2d, dtype=np.float64)
    ok = np.asarray(point_ok, dtype=bool)
    out = mv.copy()
    for lm, nb in enumerate(neighbours):
        if not ok[:, lm].any() or not nb:
            continue
        cols = np.array([pos[int(v)] for v in nb])
        d2 = ((uv[ok[:, lm]][:, cols] - pts[ok[:, lm], lm][:, None]) ** 2).sum(-1).mean(0)
        best = int(np.argmin(d2))
        if d2[best] < ((uv[ok[:, lm], pos[int(mv[lm])]] - pts[ok[:, lm], lm]) ** 2).sum(-1).mean():
            out[lm] = int(cand[cols[best]])
    return out


def correspondence_points(landmarks: Any, index: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """(T, L, 2), ``landmarks``' dtype: the 2D points of the landmarks ``index`` from (T, 478, 2|3) ``landmarks``, an
    array or an h5py dataset read ``chunk`` frames at a time (a long video's full landmark array is never held)."""
    idx = np.asarray(index, dtype=np.int64)
    out = np.empty((landmarks.shape[0], len(idx), 2), dtype=landmarks.dtype)
    for start in range(0, landmarks.shape[0], chunk):
        out[start : start + chunk] = np.asarray(landmarks[start : start + chunk])[:, idx, :2]
    return out


def fit_tracked_landmarks(
    landmarks: Any,
    valid: np.ndarray,
    model: Any,
    correspondence: Any,
    image_size: int,
    cfg: FitConfig,
    blendshapes: np.ndarray | None = None,
    blendshape_names: Sequence[str] | None = None,
) -> FitResult:
    """The fit stage's recipe on crop-space MediaPipe landmarks (T, 478, 2|3; an array or an h5py dataset): the
    refined fit over the correspondence's points with its weights, expressions started from the blendshapes when
    `cfg.init_from_blendshapes` and they are given. Shared by the fit stage and the metrics' re-extraction, so both
    measure motion the same way.

    The refinement lets each correspondence slide to a better vertex for this face (within refine_radius): the generic
    MediaPipe<->model pairs carry a per-face constant offset that otherwise biases the expressions."""
    init = matched = None
    if cfg.init_from_blendshapes and blendshapes is not None:
        init = blendshapes_to_expression(blendshapes, list(blendshape_names), model.expression_names)
        matched = blendshape_matched(list(blendshape_names), model.expression_names)
    return fit_sequence_refined(
        correspondence_points(landmarks, correspondence.mediapipe_idx),
        valid,
        model,
        correspondence.model_vertex,
        image_size,
        cfg,
        init_expression=init,
        point_weights=np.asarray(correspondence.weight, np.float32),
        init_matched=matched,
    )


def fit_sequence_refined(
    points2d: np.ndarray,
    valid: np.ndarray,
    model: Any,
    model_vertex: np.ndarray,
    image_size: int,
    cfg: FitConfig | None = None,
    init_expression: np.ndarray | None = None,
    point_weights: np.ndarray | None = None,
    device: str | None = None,
    init_matched: np.ndarray | None = None,
) -> FitResult:
    """Fit identity, per-frame expression and pose to the 2D landmarks of a whole sequence (the one entry point).

    points2d: (T, L, 2) crop pixels of the L correspondence landmarks (NaN points are ignored).
    valid: (T,) frames that have landmarks; the others get interpolated parameters.
    model: the FULL LinearMorphableModel (it is restricted here, to the correspondence's current vertices);
    model_vertex: (L,) the correspondence's vertices (``Correspondence.model_vertex``). The result's
    ``model_vertex`` holds the refined vertices (store them as the fit's correspondence_vertex).
    image_size: crop side in pixels (intrinsics are focal_factor * size, principal point at the centre).
    cfg.refine_radius (model units, 0 disables: the generic correspondence as given) and cfg.refine_rounds control
    the per-video correspondence refinement (``refine_correspondence``) on the key frames.
    init_expression: (T, Ke) start values (``blendshapes_to_expression``), used if cfg.init_from_blendshapes; they
    are also the blendshape prior's targets (cfg.w_blendshape_prior) for the shapes ``init_matched`` (Ke,) marks
    (``blendshape_matched``; None: all).
    point_weights: (L,) per-correspondence weights (``Correspondence.weight``); default all ones.
    device: overrides cfg.device (torch device of the Jacobian products; the linear solves run on the CPU).
    """
    cfg = cfg or FitConfig()
    t0 = time.perf_counter()
    dev = resolve_device(str(device or cfg.device))
    vertices = np.asarray(model_vertex, dtype=np.int64)
    with _Threads(cfg.num_threads):
        data = _prepare(
            points2d, valid, model.subset(vertices), image_size, cfg, init_expression, point_weights, init_matched
        )
        keyframes = select_keyframes(data.frame_ok, cfg.identity_frames)
        history: list[float] = []
        stages: dict[str, int] = {}
        rounds = cfg.refine_rounds if cfg.refine_radius > 0 else 0
        bar = progress(total=2 + rounds, desc=f"fit {len(valid)} frames", unit="solve")  # key frames, refinements, all
        key_state, stages["keyframes"] = _fit_keyframes(
            data, cfg, dev, None, keyframes, cfg.iterations_identity, history
        )
        bar.update()
        for r in range(rounds):
            intr = _intrinsics(data, cfg, float(key_state.log_focal))
            rot = FLIP_YZ[None] @ key_state.rotation.cpu().numpy()
            new = refine_correspondence(
                model,
                vertices,
                data.pts[keyframes],
                data.point_ok[keyframes],
                key_state.identity.cpu().numpy(),
                key_state.expression.cpu().numpy(),
                rot,
                key_state.translation.cpu().numpy(),
                intr,
                cfg.refine_radius,
            )
            stages[f"refine{r}_moved"] = int((new != vertices).sum())
            if np.array_equal(new, vertices):
                break
            vertices = new
            data = _prepare(
                points2d, valid, model.subset(vertices), image_size, cfg, init_expression, point_weights, init_matched
            )
            key_state, stages[f"keyframes{r + 1}"] = _fit_keyframes(
                data, cfg, dev, key_state, keyframes, cfg.iterations_identity, history
            )
            bar.update()
        state, sequence_stages, final = _fit_all_frames(data, cfg, dev, key_state, keyframes, history)
        stages.update(sequence_stages)
        bar.update(bar.total - bar.n)
        bar.close()
        result = _result(data, cfg, state, keyframes, t0, history, stages, final, vertices)
        result.landmarks_68 = fitted_landmarks_68(model, result)
        return result


def fitted_landmarks_68(model: Any, result: FitResult) -> np.ndarray | None:
    """(T, 68, 2) float32 crop px of the model's 68 Multi-PIE landmark vertices under the fitted parameters (what the
    fit stage stores as ``landmarks_68``; ICT: the dlib-aligned embedding, ``morphable.ict.output_landmarks_68``), or
    None for a model without a 68-point embedding."""
    from ..morphable.ict import output_landmarks_68

    vertices = output_landmarks_68(model) if getattr(model, "landmarks_68", None) is not None else None
    if vertices is None:
        return None
    return project_model_points(
        model,
        result.identity,
        result.expression,
        result.rotation,
        result.translation,
        result.intrinsics,
        vertex_indices=vertices,
    ).astype(np.float32)


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
    For the full mesh pass a few frames at a time (T x V x 3 floats).
    """
    idx = slice(None) if vertex_indices is None else np.asarray(vertex_indices, dtype=np.int64)
    neutral = np.asarray(model.neutral, dtype=np.float64)[idx]
    id_basis = np.asarray(model.identity_basis)[:, idx]
    exp_basis = np.asarray(model.expression_basis)[:, idx]
    e = np.asarray(expression, dtype=np.float64)
    e = e.reshape(1, -1) if e.ndim == 1 else e
    shape = _identity_shape(neutral, id_basis, np.asarray(identity, dtype=np.float64).reshape(-1))
    rot = np.asarray(rotation, dtype=np.float64).reshape(-1, 3, 3)
    tr = np.asarray(translation, dtype=np.float64).reshape(-1, 3)
    return _project(shape, exp_basis[: e.shape[1]], e, rot, tr, intrinsics)
