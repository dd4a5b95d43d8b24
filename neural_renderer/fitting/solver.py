"""Levenberg-Marquardt for the landmark fit, exploiting its structure.

Unknowns: per frame p_t = (head rotation increment (3), translation (3), expression (Ke)), n = 6 + Ke values, and
optionally shared s = (identity (Ki), log focal (0|1)), m values. The Gauss-Newton matrix is

    [[A, E], [E^T, C]]   A: (T n x T n), per-frame blocks plus, for consecutive frames, temporal smoothness (which
                            couples a parameter only with itself in frames t +- 1, t +- 2: bandwidth 2n);
                         E: per-frame (n x m) couplings with the shared block C (m x m).

The shared unknowns are solved from the Schur complement C - E^T A^-1 E and p is back-substituted, so a step is
exact Gauss-Newton at O(T n^3) cost. Without smoothness (key frames) A is block diagonal and factorised as a batch;
with smoothness it is a banded Cholesky (LAPACK). First-order methods (L-BFGS, Adam) were tried first: they need
thousands of iterations here, because blendshapes and identity components move landmarks in nearly the same
directions (an ill-conditioned problem that Gauss-Newton's curvature handles in ~10 steps).

Expression bounds [lo, hi]: an active-set method. At the start of a pass, coefficients at a bound whose gradient
points out of the box are frozen (step 0); after each accepted step, coefficients the step carried out of the box are
clamped onto it and frozen for the rest of the pass. When the pass converges, the frozen set is re-chosen once from
the gradient (releasing those pulled back inside) and a second pass runs. Tried and dropped: re-choosing the set
every step (it zigzags between steps), and a quadratic penalty on the excess (full steps overshoot the box, so most
steps end up halved): both took 15-20 iterations on real tracks, this takes ~8 (the unbounded problem takes 3).

Cost (all terms are sums of squares):
    data     sum_tl w_l m_tl |pi(x_tl) - u_tl|^2 / sum(w m)    (pixels of a 512 px crop)
    + w_id |alpha|^2 + w_exp/T sum |beta_t|^2 + 1/T sum_tk w_bk (beta_tk - b_tk)^2
    + w_es/(T-1) sum |beta_t+1 - beta_t|^2 + w_es2/(T-2) sum |beta_t+2 - 2 beta_t+1 + beta_t|^2
    + w_rs/(T-1) sum |log(R_t+1 R_t^T)|^2 + w_ts/(T-1) sum |t_t+1 - t_t|^2        (only for consecutive frames)
The b_tk term pulls the coefficients that have a tracker blendshape (b, MediaPipe's scores mapped by ARKit name)
towards it, with per-coefficient weights w_bk: it decides what landmarks barely see (eyeLook*, eyeWide, brows move
few landmarks) from a source that treats left and right alike, instead of leaving it to small asymmetries of the
landmark and correspondence noise.
Rotations are head rotations in the model frame (``camera.py``), updated by left increments R <- exp(d) R.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg
import torch

from .rotation import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["SequenceProblem", "SequenceState", "sequence_cost", "lm_solve"]

_FLIP = (1.0, -1.0, -1.0)


@dataclass(frozen=True)
class SequenceProblem:
    """Constants of one fit (float64 tensors; target may be float32, promoted where used). Pixels are in the 512 px
    reference frame."""

    target: torch.Tensor  # (T, L, 2)
    sqrt_w: torch.Tensor  # (T, L) sqrt(w_l m_tl / sum w m): 0 for missing points and invalid frames
    neutral: torch.Tensor  # (L, 3)
    id_basis: torch.Tensor  # (L, 3, Ki)
    exp_basis: torch.Tensor  # (L, 3, Ke)
    focal: float  # base focal (px), fx = fy
    center: tuple[float, float]  # cx, cy (px)
    w_identity: float
    w_expression: float
    w_expression_smooth: float = 0.0
    w_expression_smooth2: float = 0.0
    w_rotation_smooth: float = 0.0
    w_translation_smooth: float = 0.0
    bounds: tuple[float, float] | None = None
    temporal: bool = True
    """frames are consecutive (smoothness terms apply); False for a key-frame subset."""
    expression_target: torch.Tensor | None = None
    """(T, Ke) b_tk of the blendshape prior (None: no such term)."""
    w_expression_target: torch.Tensor | None = None
    """(Ke,) w_bk of the blendshape prior (0 for coefficients without a tracker blendshape)."""
    chunk_frames: int = 256

    @property
    def n_frames(self) -> int:
        return int(self.target.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.id_basis.shape[2])

    @property
    def n_expression(self) -> int:
        return int(self.exp_basis.shape[2])

    @property
    def smooth(self) -> bool:
        return (
            self.temporal
            and self.n_frames > 1
            and (
                self.w_expression_smooth > 0
                or self.w_expression_smooth2 > 0
                or self.w_rotation_smooth > 0
                or self.w_translation_smooth > 0
            )
        )

    def frames(self, index: np.ndarray) -> SequenceProblem:
        """The problem restricted to some frames (not consecutive: no smoothness); weights keep their scale."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long, device=self.target.device)
        sw = self.sqrt_w[idx]
        total = float((sw**2).sum())
        sw = sw / math.sqrt(total) if total > 0 else sw
        tgt = None if self.expression_target is None else self.expression_target[idx]
        return replace(self, target=self.target[idx], sqrt_w=sw, temporal=False, expression_target=tgt)

    def window(self, start: int, stop: int) -> SequenceProblem:
        """Consecutive frames [start, stop) as a problem of their own whose cost is the whole problem's terms within
        them: data weights are kept, and the per-frame means (priors /T, smoothness /(T-1), /(T-2)) are rescaled to
        the window's length, so every frame's terms weigh what they weigh in the whole. Terms that couple a frame of
        the window to one outside it are dropped (the windowed fit's only approximation; ``fit.py``)."""
        t, tw = self.n_frames, stop - start
        if not 0 <= start < stop <= t:
            raise ValueError(f"window [{start}, {stop}) outside 0..{t}")

        def ratio(lag: int) -> float:
            return max(tw - lag, 0) / (t - lag) if t > lag else 1.0

        sl = slice(start, stop)
        return replace(
            self,
            target=self.target[sl],
            sqrt_w=self.sqrt_w[sl],
            w_identity=self.w_identity * ratio(0),
            w_expression=self.w_expression * ratio(0),
            w_expression_target=None if self.w_expression_target is None else self.w_expression_target * ratio(0),
            expression_target=None if self.expression_target is None else self.expression_target[sl],
            w_expression_smooth=self.w_expression_smooth * ratio(1),
            w_rotation_smooth=self.w_rotation_smooth * ratio(1),
            w_translation_smooth=self.w_translation_smooth * ratio(1),
            w_expression_smooth2=self.w_expression_smooth2 * ratio(2),
        )


@dataclass(frozen=True)
class SequenceState:
    identity: torch.Tensor  # (Ki,)
    expression: torch.Tensor  # (T, Ke)
    rotation: torch.Tensor  # (T, 3, 3) head rotations (model frame)
    translation: torch.Tensor  # (T, 3)
    log_focal: torch.Tensor  # ()

    def frames(self, index: np.ndarray) -> SequenceState:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long, device=self.expression.device)
        return replace(
            self, expression=self.expression[idx], rotation=self.rotation[idx], translation=self.translation[idx]
        )


def _camera_points(prob: SequenceProblem, st: SequenceState, sl: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Head-rotated model points R X (Tc, L, 3) and camera points (Tc, L, 3) for frames ``sl``."""
    shape = prob.neutral + prob.id_basis @ st.identity  # (L, 3)
    x = shape[None] + torch.einsum("lck,tk->tlc", prob.exp_basis, st.expression[sl])
    rx = x @ st.rotation[sl].transpose(1, 2)
    return rx, rx * rx.new_tensor(_FLIP) + st.translation[sl, None, :]


def _project(prob: SequenceProblem, st: SequenceState, y: torch.Tensor) -> torch.Tensor:
    f = prob.focal * torch.exp(st.log_focal)
    z = y[..., 2].clamp(min=1e-6)
    return torch.stack([f * y[..., 0] / z + prob.center[0], f * y[..., 1] / z + prob.center[1]], dim=-1)


def _diff(x: torch.Tensor, order: int) -> torch.Tensor:
    for _ in range(order):
        x = x[1:] - x[:-1]
    return x


def sequence_cost(prob: SequenceProblem, st: SequenceState) -> dict[str, float]:
    """Every cost term (see the module docstring) and their sum under 'total'."""
    t = prob.n_frames
    data = 0.0
    for start in range(0, t, prob.chunk_frames):
        sl = slice(start, start + prob.chunk_frames)
        _, y = _camera_points(prob, st, sl)
        data += float(((prob.sqrt_w[sl, :, None] * (_project(prob, st, y) - prob.target[sl])) ** 2).sum())
    out = {
        "data": data,
        "identity_prior": prob.w_identity * float((st.identity**2).sum()),
        "expression_prior": prob.w_expression / t * float((st.expression**2).sum()),
        "blendshape_prior": 0.0,
        "expression_smooth": 0.0,
        "expression_smooth2": 0.0,
        "rotation_smooth": 0.0,
        "translation_smooth": 0.0,
    }
    if prob.expression_target is not None:
        d = st.expression - prob.expression_target
        out["blendshape_prior"] = float((prob.w_expression_target * d * d).sum()) / t
    if prob.smooth:
        out["expression_smooth"] = prob.w_expression_smooth / (t - 1) * float((_diff(st.expression, 1) ** 2).sum())
        rel = matrix_to_axis_angle(st.rotation[1:] @ st.rotation[:-1].transpose(1, 2))
        out["rotation_smooth"] = prob.w_rotation_smooth / (t - 1) * float((rel**2).sum())
        out["translation_smooth"] = prob.w_translation_smooth / (t - 1) * float((_diff(st.translation, 1) ** 2).sum())
        if t > 2:
            d2 = _diff(st.expression, 2)
            out["expression_smooth2"] = prob.w_expression_smooth2 / (t - 2) * float((d2**2).sum())
    out["total"] = sum(out.values())
    return out


@dataclass
class _System:
    a_blocks: np.ndarray  # (T, n, n) per-frame blocks of A (data + priors)
    e: np.ndarray  # (T, n, m)
    c: np.ndarray  # (m, m)
    g_frame: np.ndarray  # (T, n)
    g_shared: np.ndarray  # (m,)


def _build_system(
    prob: SequenceProblem, st: SequenceState, jac_dtype: torch.dtype, n_shared: int, with_focal: bool
) -> _System:
    """Gauss-Newton blocks and gradient of the data and prior terms (smoothness is added by ``_smoothness``).

    Every data Jacobian row factors through d pixel / d model point, M_tl = P_tl F R_t (2 x 3), so the identity
    block C = sum_tl A_l^T M_tl^T M_tl A_l is formed from per-point sums over frames of M^T M (3 x 3) instead of a
    (T L) x Ki product. n_shared: 0 (identity fixed) or Ki (+1 with the focal).
    """
    t, ke, ki = prob.n_frames, prob.n_expression, prob.n_identity
    n = 6 + ke
    m = n_shared
    n_points = prob.neutral.shape[0]
    a_blocks = np.zeros((t, n, n))
    e = np.zeros((t, n, m))
    g_frame = np.zeros((t, n))
    g_shared = np.zeros(m)
    mtm_sum = torch.zeros((n_points, 3, 3), dtype=jac_dtype, device=prob.neutral.device)
    focal_parts: list[tuple[torch.Tensor, torch.Tensor]] = []
    f = prob.focal * torch.exp(st.log_focal)
    flip = prob.neutral.new_tensor(_FLIP)
    b_exp = prob.exp_basis.to(jac_dtype)
    b_id = prob.id_basis.to(jac_dtype)
    for start in range(0, t, prob.chunk_frames):
        sl = slice(start, min(start + prob.chunk_frames, t))
        tc = sl.stop - sl.start
        rx, y = _camera_points(prob, st, sl)
        sw = prob.sqrt_w[sl]
        uv = _project(prob, st, y)
        r = sw[..., None] * (uv - prob.target[sl])  # (tc, L, 2)
        z = y[..., 2].clamp(min=1e-6)
        fz = sw * f / z
        zero = torch.zeros_like(fz)
        p = torch.stack(
            [torch.stack([fz, zero, -fz * y[..., 0] / z], -1), torch.stack([zero, fz, -fz * y[..., 1] / z], -1)], -2
        )  # (tc, L, 2, 3) d pixel / d camera point (weighted)
        pf = p * flip  # d pixel / d head-rotated model point (camera = flip * rx + t)
        mm = torch.einsum("tlij,tjk->tlik", pf, st.rotation[sl]).to(jac_dtype)  # d pixel / d model point
        j_frame = torch.empty((tc, n_points, 2, n), dtype=jac_dtype, device=p.device)
        j_frame[..., :3] = torch.linalg.cross(rx[:, :, None, :].expand_as(pf), pf)  # a @ -[v]_x = v x a
        j_frame[..., 3:6] = p
        j_frame[..., 6:] = torch.einsum("tlij,ljk->tlik", mm, b_exp)
        j_frame = j_frame.reshape(tc, -1, n)
        rr = r.reshape(tc, -1, 1).to(jac_dtype)
        jt = j_frame.transpose(1, 2)
        a_blocks[sl] = (jt @ j_frame).double().cpu().numpy()
        g_frame[sl] = (jt @ rr)[..., 0].double().cpu().numpy()
        if m == 0:
            continue
        j_id = torch.einsum("tlij,ljk->tlik", mm, b_id).reshape(tc, -1, ki)
        e[sl, :, :ki] = (jt @ j_id).double().cpu().numpy()
        g_shared[:ki] += (j_id.transpose(1, 2) @ rr).sum(0)[:, 0].double().cpu().numpy()
        mtm_sum += torch.einsum("tlia,tlib->lab", mm, mm)
        if with_focal:  # d pixel / d log f = f X / Z = pixel - centre
            j_f = (sw[..., None] * (uv - uv.new_tensor(prob.center))).to(jac_dtype).reshape(tc, -1, 1)
            e[sl, :, ki:] = (jt @ j_f).double().cpu().numpy()
            g_shared[ki] += float((j_f * rr).sum())
            focal_parts.append((j_f, j_id))
    c = np.zeros((m, m))
    if m:
        c[:ki, :ki] = torch.einsum("lak,lab,lbj->kj", b_id, mtm_sum, b_id).double().cpu().numpy()
        c[np.arange(ki), np.arange(ki)] += prob.w_identity
        g_shared[:ki] += prob.w_identity * st.identity.cpu().numpy()
        if with_focal:
            c[ki, ki] = sum(float((j_f**2).sum()) for j_f, _ in focal_parts)
            cross = sum((j_id.transpose(1, 2) @ j_f).sum(0)[:, 0] for j_f, j_id in focal_parts)
            c[:ki, ki] = c[ki, :ki] = cross.double().cpu().numpy()
    ev = prob.w_expression / t
    idx = np.arange(6, n)
    a_blocks[:, idx, idx] += ev
    ex = st.expression.cpu().numpy()
    g_frame[:, 6:] += ev * ex
    if prob.expression_target is not None:
        wb = prob.w_expression_target.cpu().numpy() / t
        a_blocks[:, idx, idx] += wb
        g_frame[:, 6:] += wb * (ex - prob.expression_target.cpu().numpy())
    return _System(a_blocks, e, c, g_frame, g_shared)


def _dtd_lags(t: int, order: int) -> list[np.ndarray]:
    """Diagonals (lag 0, 1, 2) of D^T D for the order-th temporal difference operator D over t frames."""
    lags = [np.zeros(t), np.zeros(max(t - 1, 0)), np.zeros(max(t - 2, 0))]
    if t <= order:
        return lags
    coef = np.array([-1.0, 1.0]) if order == 1 else np.array([1.0, -2.0, 1.0])
    for a in range(order + 1):  # row r of D touches frames r .. r + order
        for b in range(a, order + 1):
            lags[b - a][a : a + t - order] += coef[a] * coef[b]
    return lags


def _smoothness(prob: SequenceProblem, st: SequenceState) -> tuple[list[np.ndarray], np.ndarray]:
    """Smoothness Gauss-Newton diagonals [lag 0 (T, n), lag 1 (T-1, n), lag 2 (T-2, n)] and gradient (T, n)."""
    t, n = prob.n_frames, 6 + prob.n_expression
    w1 = np.zeros(n)
    w2 = np.zeros(n)
    w1[:3] = prob.w_rotation_smooth / (t - 1)
    w1[3:6] = prob.w_translation_smooth / (t - 1)
    w1[6:] = prob.w_expression_smooth / (t - 1)
    if t > 2:
        w2[6:] = prob.w_expression_smooth2 / (t - 2)
    l1, l2 = _dtd_lags(t, 1), _dtd_lags(t, 2)
    lags = [np.outer(l1[k], w1) + np.outer(l2[k], w2) for k in range(3)]
    grad = np.zeros((t, n))
    # rotation: residual log(R_t+1 R_t^T), Jacobians ~ +I (frame t+1) and -I (frame t) for small relative rotations
    rel = matrix_to_axis_angle(st.rotation[1:] @ st.rotation[:-1].transpose(1, 2)).cpu().numpy()
    grad[1:, :3] += w1[0] * rel
    grad[:-1, :3] -= w1[0] * rel
    # translation and expression are linear: gradient = (D^T D) x
    lin = np.concatenate([st.translation.cpu().numpy(), st.expression.cpu().numpy()], axis=1)
    grad[:, 3:] += lags[0][:, 3:] * lin
    grad[:-1, 3:] += lags[1][:, 3:] * lin[1:]
    grad[1:, 3:] += lags[1][:, 3:] * lin[:-1]
    grad[:-2, 3:] += lags[2][:, 3:] * lin[2:]
    grad[2:, 3:] += lags[2][:, 3:] * lin[:-2]
    return lags, grad


def _factor_solve(d: np.ndarray, lags: list[np.ndarray] | None, rhs: np.ndarray) -> np.ndarray | None:
    """Solve A X = rhs for A = blockdiag(d) (+ banded smoothness ``lags``); rhs (T, n, k). None if not SPD."""
    t, n, _ = d.shape
    if lags is None:
        low, info = torch.linalg.cholesky_ex(torch.from_numpy(d))
        if int(info.max()) != 0:
            return None
        return torch.cholesky_solve(torch.from_numpy(rhs), low).numpy()
    # upper banded storage ab[u + i - j, j] = A[i, j]; same-parameter couplings sit lag * n apart
    nn = t * n
    u = 2 * n if t > 2 else n
    ab = np.zeros((u + 1, nn))
    ia, ib = np.triu_indices(n)
    ab[np.tile(u + ia - ib, t), (np.arange(t)[:, None] * n + ib[None]).ravel()] = d[:, ia, ib].ravel()
    for lag in (1, 2):
        if t > lag:
            ab[u - lag * n, lag * n :] += lags[lag].ravel()
    try:
        cb = scipy.linalg.cholesky_banded(ab, lower=False, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    x = scipy.linalg.cho_solve_banded((cb, False), rhs.reshape(nn, -1), check_finite=False)
    return x.reshape(rhs.shape)


def _solve(sys_: _System, lags: list[np.ndarray] | None, g_frame: np.ndarray, damping: float, frozen: np.ndarray):
    """One damped Gauss-Newton step (d_frame (T, n), d_shared (m,)), or None if the matrix is not positive definite.

    Marquardt damping scales the diagonal by (1 + damping), floored so that unknowns without data stay solvable.
    Frozen frame unknowns (held at a bound) get no gradient, no coupling to the shared block and a huge diagonal,
    so their step is ~0 (and is zeroed by the caller).
    """
    t, n, m = sys_.e.shape
    d = sys_.a_blocks.copy()
    idx = np.arange(n)
    diag = d[:, idx, idx] + (lags[0] if lags is not None else 0.0)  # d carries the smoothness diagonal too
    floor = 1e-9 * max(float(diag.max()), 1e-30)
    scale = np.maximum(diag, floor)
    d[:, idx, idx] = diag + damping * scale + floor + 1e10 * scale * frozen
    g_frame = np.where(frozen, 0.0, g_frame)
    e = np.where(frozen[..., None], 0.0, sys_.e)
    x = _factor_solve(d, lags, np.concatenate([g_frame[..., None], e], axis=2))
    if x is None:
        return None
    x_g, x_e = x[:, :, 0].reshape(-1), x[:, :, 1:].reshape(t * n, m)
    if m == 0:
        return -x_g.reshape(t, n), np.zeros(0)
    e = e.reshape(t * n, m)
    c = sys_.c.copy()
    dc = np.diag(c).copy()
    c[np.arange(m), np.arange(m)] += damping * np.maximum(dc, 1e-9 * max(float(dc.max()), 1e-30))
    try:
        d_shared = scipy.linalg.solve(c - e.T @ x_e, -sys_.g_shared + e.T @ x_g, assume_a="pos", check_finite=False)
    except np.linalg.LinAlgError:
        return None
    return (-x_g - x_e @ d_shared).reshape(t, n), d_shared


def _apply(
    prob: SequenceProblem, st: SequenceState, d_frame: np.ndarray, d_shared: np.ndarray, with_focal: bool
) -> SequenceState:
    dt, dev = st.expression.dtype, st.expression.device
    df = torch.from_numpy(d_frame).to(dtype=dt, device=dev)
    expr = st.expression + df[:, 6:]
    ident, logf = st.identity, st.log_focal
    if len(d_shared):
        ki = prob.n_identity
        ident = ident + torch.from_numpy(d_shared[:ki]).to(dtype=dt, device=dev)
        if with_focal:
            logf = logf + float(d_shared[ki])
    return SequenceState(
        identity=ident,
        expression=expr,
        rotation=axis_angle_to_matrix(df[:, :3]) @ st.rotation,
        translation=st.translation + df[:, 3:6],
        log_focal=logf,
    )


def lm_solve(
    prob: SequenceProblem,
    state: SequenceState,
    iterations: int,
    *,
    optimize_identity: bool = True,
    optimize_focal: bool = False,
    tolerance: float = 1e-3,
    jac_dtype: torch.dtype = torch.float32,
    history: list[float] | None = None,
) -> tuple[SequenceState, int]:
    """Levenberg-Marquardt iterations from ``state``; returns the final state and the iterations run.

    optimize_identity=False keeps identity (and focal) fixed: frames are then independent apart from smoothness,
    and the step needs no Schur complement. Stops when an accepted step lowers the cost by less than ``tolerance``
    (relative) after the release round, when no damping helps, or after ``iterations`` steps. ``history`` gets the
    cost at the start and after each accepted step.
    """
    bounds = prob.bounds
    if bounds is not None:
        state = replace(state, expression=state.expression.clamp(*bounds))
    cost = sequence_cost(prob, state)["total"]
    if history is not None:
        history.append(cost)
    n_shared = (prob.n_identity + (1 if optimize_focal else 0)) if optimize_identity else 0
    with_focal = optimize_identity and optimize_focal
    t, n = prob.n_frames, 6 + prob.n_expression
    frozen = np.zeros((t, n), dtype=bool)
    release = bounds is not None  # one release of the frozen set once the first pass has converged
    start_round = True
    damping = 1e-4
    done = 0
    for it in range(iterations):
        done = it + 1
        sys_ = _build_system(prob, state, jac_dtype, n_shared, with_focal)
        g_frame = sys_.g_frame
        lags = None
        if prob.smooth:
            lags, g_smooth = _smoothness(prob, state)
            g_frame = g_frame + g_smooth
        if bounds is not None and start_round:
            # the frozen set: coefficients at a bound whose gradient points out of the box
            ex = state.expression.cpu().numpy()
            gx = g_frame[:, 6:]
            frozen[:, 6:] = ((ex <= bounds[0]) & (gx > 0)) | ((ex >= bounds[1]) & (gx < 0))
            start_round = False
        accepted = False
        for _ in range(10):
            step = _solve(sys_, lags, g_frame, damping, frozen)
            if step is not None:
                cand = _apply(prob, state, np.where(frozen, 0.0, step[0]), step[1], with_focal)
                left = None
                if bounds is not None:
                    left = ((cand.expression < bounds[0]) | (cand.expression > bounds[1])).cpu().numpy()
                    cand = replace(cand, expression=cand.expression.clamp(*bounds))
                new_cost = sequence_cost(prob, cand)["total"]
                if math.isfinite(new_cost) and new_cost <= cost:
                    accepted = True
                    break
            damping *= 8.0
        if not accepted:
            break
        rel = (cost - new_cost) / max(cost, 1e-30)
        state, cost = cand, new_cost
        damping = max(damping / 5.0, 1e-9)
        if left is not None:
            frozen[:, 6:] |= left  # coefficients that hit a bound stay there for this round
        if history is not None:
            history.append(cost)
        if rel < tolerance:
            if not release:
                break
            release = False
            start_round = True  # recompute the frozen set from the gradient: releases those pulled back inside
    return state, done
