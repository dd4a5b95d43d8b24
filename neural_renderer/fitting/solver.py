"""Levenberg-Marquardt for the sequence fit, exploiting its structure.

Unknowns: per frame p_t = (head rotation increment (3), translation (3), expression (Ke)), n = 6 + Ke values, and
shared s = (identity (Ki), optionally log focal). The Gauss-Newton matrix is

    [[A, E], [E^T, C]]   A: (T n x T n) block-banded (per-frame blocks + temporal smoothness, which couples a
                             parameter only with itself in frames t +- 1, t +- 2, so the bandwidth is 2n),
                         E: per-frame (n x m) couplings with the shared block C (m x m).

A is factorised once per step with a banded Cholesky (O(T n^3)), the shared unknowns are solved from the Schur
complement C - E^T A^-1 E, and p is back-substituted: an exact LM step in well under a second for 1000 frames,
where first-order methods (L-BFGS, Adam) need thousands of iterations on this ill-conditioned problem (blendshapes
and identity components move landmarks in nearly the same directions).

Expression bounds are a quadratic penalty on the part of each coefficient outside [lo, hi] (a piecewise-linear
residual, so Gauss-Newton handles it like any other term); with a weight far above the data curvature the
remaining violation is tiny and the caller clamps it. (Projected steps with active-set freezing were tried: they
need 3-5x more iterations on real tracks, because clamping truncates most steps.)

Cost (all terms are sums of squares, so GN applies to each):
    data     sum_tl w_l m_tl |pi(x_tl) - u_tl|^2 / sum(w m)    (pixels of a 512 px crop)
    + w_id |alpha|^2 + w_exp/T sum |beta_t|^2
    + w_es/(T-1) sum |beta_t+1 - beta_t|^2 + w_es2/(T-2) sum |beta_t+2 - 2 beta_t+1 + beta_t|^2
    + w_rs/(T-1) sum |log(R_t+1 R_t^T)|^2 + w_ts/(T-1) sum |t_t+1 - t_t|^2
    + w_b/T sum |beta_t - clamp(beta_t, lo, hi)|^2
Rotations are head rotations in the model frame (``camera.py``), updated by left increments R <- exp(d) R.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg
import torch

from .rotation import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["SequenceProblem", "SequenceState", "sequence_cost", "lm_solve"]

_FLIP = (1.0, -1.0, -1.0)


@dataclass(frozen=True)
class SequenceProblem:
    """Constants of one fit (float64 tensors). Pixels are in the 512 px reference frame."""

    target: torch.Tensor  # (T, L, 2)
    sqrt_w: torch.Tensor  # (T, L) sqrt(w_l m_tl / sum w m): 0 for missing points and invalid frames
    neutral: torch.Tensor  # (L, 3)
    id_basis: torch.Tensor  # (L, 3, Ki)
    exp_basis: torch.Tensor  # (L, 3, Ke)
    focal: float  # base focal (px), fx = fy
    center: tuple[float, float]  # cx, cy (px)
    w_identity: float
    w_expression: float
    w_expression_smooth: float
    w_expression_smooth2: float
    w_rotation_smooth: float
    w_translation_smooth: float
    bounds: tuple[float, float] | None
    w_bounds: float
    optimize_focal: bool
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


@dataclass(frozen=True)
class SequenceState:
    identity: torch.Tensor  # (Ki,)
    expression: torch.Tensor  # (T, Ke)
    rotation: torch.Tensor  # (T, 3, 3) head rotations (model frame)
    translation: torch.Tensor  # (T, 3)
    log_focal: torch.Tensor  # ()


def _camera_points(prob: SequenceProblem, st: SequenceState, sl: slice) -> tuple[torch.Tensor, torch.Tensor]:
    """Head-rotated model points R X (Tc, L, 3) and camera points (Tc, L, 3) for frames ``sl``."""
    shape = prob.neutral + prob.id_basis @ st.identity  # (L, 3)
    x = shape[None] + torch.einsum("lck,tk->tlc", prob.exp_basis, st.expression[sl])
    rx = x @ st.rotation[sl].transpose(1, 2)
    flip = rx.new_tensor(_FLIP)
    return rx, rx * flip + st.translation[sl, None, :]


def _data_residuals(prob: SequenceProblem, st: SequenceState, sl: slice) -> torch.Tensor:
    _, y = _camera_points(prob, st, sl)
    f = prob.focal * torch.exp(st.log_focal)
    z = y[..., 2].clamp(min=1e-6)
    uv = torch.stack([f * y[..., 0] / z + prob.center[0], f * y[..., 1] / z + prob.center[1]], dim=-1)
    return prob.sqrt_w[sl, :, None] * (uv - prob.target[sl])


def _diff(x: torch.Tensor, order: int) -> torch.Tensor:
    for _ in range(order):
        x = x[1:] - x[:-1]
    return x


def sequence_cost(prob: SequenceProblem, st: SequenceState) -> dict[str, float]:
    """Every cost term (see the module docstring) and their sum under 'total'."""
    t = prob.n_frames
    data = 0.0
    for start in range(0, t, prob.chunk_frames):
        data += float((_data_residuals(prob, st, slice(start, start + prob.chunk_frames)) ** 2).sum())
    out = {
        "data": data,
        "identity_prior": prob.w_identity * float((st.identity**2).sum()),
        "expression_prior": prob.w_expression / t * float((st.expression**2).sum()),
        "expression_smooth": 0.0,
        "expression_smooth2": 0.0,
        "rotation_smooth": 0.0,
        "translation_smooth": 0.0,
        "expression_bounds": 0.0,
    }
    if prob.bounds is not None:
        out["expression_bounds"] = prob.w_bounds / t * float(((st.expression - st.expression.clamp(*prob.bounds)) ** 2).sum())
    if t > 1:
        out["expression_smooth"] = prob.w_expression_smooth / (t - 1) * float((_diff(st.expression, 1) ** 2).sum())
        rel = matrix_to_axis_angle(st.rotation[1:] @ st.rotation[:-1].transpose(1, 2))
        out["rotation_smooth"] = prob.w_rotation_smooth / (t - 1) * float((rel**2).sum())
        out["translation_smooth"] = prob.w_translation_smooth / (t - 1) * float((_diff(st.translation, 1) ** 2).sum())
    if t > 2:
        out["expression_smooth2"] = prob.w_expression_smooth2 / (t - 2) * float((_diff(st.expression, 2) ** 2).sum())
    out["total"] = sum(out.values())
    return out


def _dtd_lags(t: int, order: int) -> list[np.ndarray]:
    """Diagonals (lag 0, 1, 2) of D^T D for the order-th temporal difference operator D over t frames."""
    if t <= order:
        return [np.zeros(t), np.zeros(max(t - 1, 0)), np.zeros(max(t - 2, 0))]
    coef = np.array([1.0]) if order == 0 else np.array([-1.0, 1.0]) if order == 1 else np.array([1.0, -2.0, 1.0])
    lags = [np.zeros(t), np.zeros(t - 1), np.zeros(t - 2)]
    for r in range(t - order):  # row r of D touches frames r .. r + order
        for a in range(order + 1):
            for b in range(a, order + 1):
                lags[b - a][r + a] += coef[a] * coef[b]
    return lags


def _skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


@dataclass
class _System:
    a_blocks: np.ndarray  # (T, n, n) per-frame blocks of A (data + priors)
    e: np.ndarray  # (T, n, m)
    c: np.ndarray  # (m, m)
    g_frame: np.ndarray  # (T, n)
    g_shared: np.ndarray  # (m,)


def _build_system(prob: SequenceProblem, st: SequenceState, jac_dtype: torch.dtype, pose_only: bool) -> _System:
    """Gauss-Newton blocks and gradient of the data and prior terms (smoothness is added by ``_smoothness``).

    Every data Jacobian row factors through d pixel / d model point, M_tl = P_tl F R_t (2 x 3), so the identity
    block C = sum_tl A_l^T M_tl^T M_tl A_l is formed from the per-point sums over frames of M^T M (3 x 3) instead of
    a (T L) x Ki product: the largest cost of a naive assembly disappears. pose_only: frame unknowns are
    (rotation, translation) only and there are no shared ones.
    """
    t, ke, ki = prob.n_frames, prob.n_expression, prob.n_identity
    n = 6 if pose_only else 6 + ke
    m = 0 if pose_only else ki + (1 if prob.optimize_focal else 0)
    n_points = prob.neutral.shape[0]
    a_blocks = np.zeros((t, n, n))
    e = np.zeros((t, n, m))
    g_frame = np.zeros((t, n))
    g_shared = np.zeros(m)
    mtm_sum = torch.zeros((n_points, 3, 3), dtype=jac_dtype, device=prob.neutral.device)
    focal_rows = []
    f = prob.focal * torch.exp(st.log_focal)
    flip = prob.neutral.new_tensor(_FLIP)
    b_exp = prob.exp_basis.to(jac_dtype)
    b_id = prob.id_basis.to(jac_dtype)
    for start in range(0, t, prob.chunk_frames):
        sl = slice(start, min(start + prob.chunk_frames, t))
        tc = sl.stop - sl.start
        rx, y = _camera_points(prob, st, sl)
        sw = prob.sqrt_w[sl]
        z = y[..., 2].clamp(min=1e-6)
        uv = torch.stack([f * y[..., 0] / z + prob.center[0], f * y[..., 1] / z + prob.center[1]], dim=-1)
        r = sw[..., None] * (uv - prob.target[sl])  # (tc, L, 2)
        fz = sw * f / z
        zero = torch.zeros_like(fz)
        p = torch.stack(
            [torch.stack([fz, zero, -fz * y[..., 0] / z], -1), torch.stack([zero, fz, -fz * y[..., 1] / z], -1)], -2
        )  # (tc, L, 2, 3) d pixel / d camera point
        pf = p * flip  # d pixel / d (head-rotated model point): camera = flip * rx + t
        j_frame = torch.empty((tc, n_points, 2, n), dtype=jac_dtype, device=p.device)
        j_frame[..., :3] = torch.linalg.cross(rx[:, :, None, :].expand_as(pf), pf)  # a @ -[v]_x = v x a
        j_frame[..., 3:6] = p
        if not pose_only:
            mm = torch.einsum("tlij,tjk->tlik", pf, st.rotation[sl]).to(jac_dtype)  # d pixel / d model point
            j_frame[..., 6:] = torch.einsum("tlij,ljk->tlik", mm, b_exp)
        j_frame = j_frame.reshape(tc, -1, n)
        rr = r.reshape(tc, -1, 1).to(jac_dtype)
        jt = j_frame.transpose(1, 2)
        a_blocks[sl] = (jt @ j_frame).double().cpu().numpy()
        g_frame[sl] = (jt @ rr)[..., 0].double().cpu().numpy()
        if pose_only:
            continue
        j_id = torch.einsum("tlij,ljk->tlik", mm, b_id).reshape(tc, -1, ki)
        e[sl, :, :ki] = (jt @ j_id).double().cpu().numpy()
        g_shared[:ki] += (j_id.transpose(1, 2) @ rr).sum(0)[:, 0].double().cpu().numpy()
        mtm_sum += torch.einsum("tlia,tlib->lab", mm, mm)
        if prob.optimize_focal:  # d pixel / d log f = f X / Z = pixel - centre
            j_f = (sw[..., None] * (uv - uv.new_tensor(prob.center))).to(jac_dtype).reshape(tc, -1, 1)
            e[sl, :, ki:] = (jt @ j_f).double().cpu().numpy()
            g_shared[ki] += float((j_f * rr).sum())
            focal_rows.append((j_f, j_id))
    c = np.zeros((m, m))
    if not pose_only:
        c[:ki, :ki] = torch.einsum("lak,lab,lbj->kj", b_id, mtm_sum, b_id).double().cpu().numpy()
        if prob.optimize_focal:
            c[ki, ki] = sum(float((j_f**2).sum()) for j_f, _ in focal_rows)
            cross = sum((j_id.transpose(1, 2) @ j_f).sum(0)[:, 0] for j_f, j_id in focal_rows)
            c[:ki, ki] = c[ki, :ki] = cross.double().cpu().numpy()
        # priors
        ev = prob.w_expression / t
        idx = np.arange(6, n)
        a_blocks[:, idx, idx] += ev
        ex = st.expression.cpu().numpy()
        g_frame[:, 6:] += ev * ex
        if prob.bounds is not None:
            excess = ex - np.clip(ex, *prob.bounds)
            a_blocks[:, idx, idx] += prob.w_bounds / t * (excess != 0)
            g_frame[:, 6:] += prob.w_bounds / t * excess
        c[np.arange(ki), np.arange(ki)] += prob.w_identity
        g_shared[:ki] += prob.w_identity * st.identity.cpu().numpy()
    return _System(a_blocks, e, c, g_frame, g_shared)


def _smoothness(prob: SequenceProblem, st: SequenceState) -> tuple[list[np.ndarray], np.ndarray]:
    """Banded D^T D lags weighted per frame parameter, (3, T, n) as [lag][frame, param], and the gradient (T, n)."""
    t, ke = prob.n_frames, prob.n_expression
    n = 6 + ke
    w1 = np.zeros(n)
    w2 = np.zeros(n)
    if t > 1:
        w1[:3] = prob.w_rotation_smooth / (t - 1)
        w1[3:6] = prob.w_translation_smooth / (t - 1)
        w1[6:] = prob.w_expression_smooth / (t - 1)
    if t > 2:
        w2[6:] = prob.w_expression_smooth2 / (t - 2)
    l1 = _dtd_lags(t, 1)
    l2 = _dtd_lags(t, 2)
    lags = [np.outer(l1[k], w1) + np.outer(l2[k], w2) for k in range(3)]
    grad = np.zeros((t, n))
    if t > 1:
        # rotation: residual log(R_t+1 R_t^T) with Jacobians ~ +I (frame t+1) and -I (frame t)
        rel = matrix_to_axis_angle(st.rotation[1:] @ st.rotation[:-1].transpose(1, 2)).cpu().numpy()
        grad[1:, :3] += w1[0] * rel
        grad[:-1, :3] -= w1[0] * rel
        # translation and expression: linear, gradient = (D^T D) x
        lin = np.concatenate([st.translation.cpu().numpy(), st.expression.cpu().numpy()], axis=1)  # (T, 3 + Ke)
        grad[:, 3:] += lags[0][:, 3:] * lin
        grad[:-1, 3:] += lags[1][:, 3:] * lin[1:]
        grad[1:, 3:] += lags[1][:, 3:] * lin[:-1]
        if t > 2:
            grad[:-2, 3:] += lags[2][:, 3:] * lin[2:]
            grad[2:, 3:] += lags[2][:, 3:] * lin[:-2]
    return lags, grad


def _block_cholesky(
    d: torch.Tensor, b1: torch.Tensor, b2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Factor the block-pentadiagonal SPD matrix A = U^T U (U block upper triangular, block bandwidth 2).

    d: (T, n, n) diagonal blocks; b1: (T-1, n), b2: (T-2, n) the (diagonal) blocks A[t, t+1], A[t, t+2].
    Returns (L_tt = U_tt^T lower (T, n, n), U1 = U[t, t+1] (T, n, n), U2 = U[t, t+2] (T, n, n)) or None if A is
    not positive definite. A sequential loop over frames of small dense ops: level-3 BLAS on n x n blocks, ~0.1 s for
    1000 frames, where LAPACK's banded solver runs the many right-hand sides of the Schur complement one at a time.
    """
    t, n, _ = d.shape
    low = torch.zeros_like(d)
    u1 = torch.zeros_like(d)
    u2 = torch.zeros_like(d)
    for i in range(t):
        s = d[i]
        if i >= 1:
            s = s - u1[i - 1].T @ u1[i - 1]
        if i >= 2:
            s = s - u2[i - 2].T @ u2[i - 2]
        l_ii, info = torch.linalg.cholesky_ex(s)
        if int(info) != 0:
            return None
        low[i] = l_ii
        if i + 1 < t:
            rhs = torch.diag(b1[i])
            if i >= 1:
                rhs = rhs - u1[i - 1].T @ u2[i - 1]
            u1[i] = torch.linalg.solve_triangular(l_ii, rhs, upper=False)
        if i + 2 < t:
            u2[i] = torch.linalg.solve_triangular(l_ii, torch.diag(b2[i]), upper=False)
    return low, u1, u2


def _block_cho_solve(factor: tuple[torch.Tensor, torch.Tensor, torch.Tensor], rhs: torch.Tensor) -> torch.Tensor:
    """Solve A X = rhs, rhs (T, n, k), with the factor of ``_block_cholesky`` (forward then backward sweep)."""
    low, u1, u2 = factor
    t = low.shape[0]
    y = torch.empty_like(rhs)
    for i in range(t):  # U^T y = rhs
        r = rhs[i]
        if i >= 1:
            r = r - u1[i - 1].T @ y[i - 1]
        if i >= 2:
            r = r - u2[i - 2].T @ y[i - 2]
        y[i] = torch.linalg.solve_triangular(low[i], r, upper=False)
    x = torch.empty_like(rhs)
    for i in range(t - 1, -1, -1):  # U x = y
        r = y[i]
        if i + 1 < t:
            r = r - u1[i] @ x[i + 1]
        if i + 2 < t:
            r = r - u2[i] @ x[i + 2]
        x[i] = torch.linalg.solve_triangular(low[i].T, r, upper=True)
    return x


def _solve(sys_: _System, lags: list[np.ndarray], g_frame: np.ndarray, damping: float, frozen=None):
    """One damped Gauss-Newton step (d_frame (T, n), d_shared (m,)) or None if the matrix is not positive definite.

    Marquardt damping scales the diagonal by (1 + damping) (floored, so unknowns without data stay solvable).
    """
    t, n, m = sys_.e.shape
    d = sys_.a_blocks.copy()
    idx = np.arange(n)
    diag = d[:, idx, idx] + lags[0]
    floor = 1e-9 * max(float(diag.max()), 1e-30)
    diag = diag + damping * np.maximum(diag, floor) + floor
    if frozen is not None:
        diag = diag + 1e12 * np.maximum(diag, floor) * frozen
    d[:, idx, idx] = diag
    factor = _block_cholesky(torch.from_numpy(d), torch.from_numpy(lags[1]), torch.from_numpy(lags[2]))
    if factor is None:
        return None
    e = sys_.e
    x = _block_cho_solve(factor, torch.from_numpy(np.concatenate([g_frame[..., None], e], axis=2))).numpy()
    x_g, x_e = x[:, :, 0].reshape(-1), x[:, :, 1:].reshape(t * n, m)
    e = e.reshape(t * n, m)
    if m:
        c = sys_.c.copy()
        dc = np.diag(c).copy()
        c[np.arange(m), np.arange(m)] += damping * np.maximum(dc, 1e-9 * max(dc.max(), 1e-30))
        s = c - e.T @ x_e
        rhs_s = -sys_.g_shared + e.T @ x_g
        try:
            d_shared = scipy.linalg.solve(s, rhs_s, assume_a="pos", check_finite=False)
        except np.linalg.LinAlgError:
            return None
        d_frame = -x_g - x_e @ d_shared
    else:
        d_shared = np.zeros(0)
        d_frame = -x_g
    return d_frame.reshape(t, n), d_shared


def _apply(prob: SequenceProblem, st: SequenceState, d_frame: np.ndarray, d_shared: np.ndarray, project=False) -> SequenceState:
    dt, dev = st.expression.dtype, st.expression.device
    df = torch.from_numpy(d_frame).to(dtype=dt, device=dev)
    rot = axis_angle_to_matrix(df[:, :3]) @ st.rotation
    expr = st.expression + df[:, 6:]
    if project:
        expr = expr.clamp(*prob.bounds)
    ident = st.identity + torch.from_numpy(d_shared[: prob.n_identity]).to(dtype=dt, device=dev)
    logf = st.log_focal + (float(d_shared[-1]) if prob.optimize_focal else 0.0)
    return SequenceState(identity=ident, expression=expr, rotation=rot, translation=st.translation + df[:, 3:6],
                         log_focal=torch.as_tensor(logf, dtype=dt, device=dev))


def lm_solve(
    prob: SequenceProblem,
    state: SequenceState,
    iterations: int,
    *,
    tolerance: float = 1e-6,
    freeze_shape: bool = False,
    jac_dtype: torch.dtype = torch.float32,
    history: list[float] | None = None,
) -> tuple[SequenceState, int]:
    """Levenberg-Marquardt iterations from ``state``; returns the final state and the iterations run.

    freeze_shape: optimise pose only (expression and the shared unknowns fixed): the first, coarse stage.
    Stops when an accepted step lowers the cost by less than ``tolerance`` (relative) or no damping helps.
    """
    cost = sequence_cost(prob, state)["total"]
    if history is not None and not history:
        history.append(cost)
    damping = 1e-4
    t, ke = prob.n_frames, prob.n_expression
    done = 0
    for it in range(iterations):
        sys_ = _build_system(prob, state, jac_dtype, freeze_shape)
        lags, g_smooth = _smoothness(prob, state)
        n = sys_.a_blocks.shape[1]
        lags = [lag[:, :n] for lag in lags]
        g_frame = sys_.g_frame + g_smooth[:, :n]
        frozen = None
        if prob.bounds is not None and not freeze_shape and os.environ.get("BOUNDMODE") == "project":
            lo, hi = prob.bounds
            ex = state.expression.cpu().numpy()
            gx = g_frame[:, 6:]
            frozen = np.zeros((t, n), dtype=bool)
            frozen[:, 6:] = ((ex <= lo + 1e-9) & (gx > 0)) | ((ex >= hi - 1e-9) & (gx < 0))
            g_frame = np.where(frozen, 0.0, g_frame)
            sys_ = replace(sys_, e=np.where(frozen[..., None], 0.0, sys_.e))
        accepted = False
        for _ in range(12):
            step = _solve(sys_, lags, g_frame, damping, frozen)
            if step is not None:
                d_frame, d_shared = step
                if freeze_shape:
                    d_frame = np.concatenate([d_frame, np.zeros((t, ke))], axis=1)
                    d_shared = np.zeros(prob.n_identity + (1 if prob.optimize_focal else 0))
                for frac in (1.0, 0.5, 0.25):
                    cand = _apply(prob, state, frac * d_frame, frac * d_shared, frozen is not None)
                    new_cost = sequence_cost(prob, cand)["total"]
                    if math.isfinite(new_cost) and new_cost <= cost:
                        accepted = True
                        break
                if accepted:
                    break
            damping *= 8.0
        done = it + 1
        if os.environ.get("LMDEBUG"): print("it", it, "damping", damping, "accepted", accepted, "cost", cost, new_cost, frac)
        if not accepted:
            break
        rel = (cost - new_cost) / max(cost, 1e-30)
        state, cost = cand, new_cost
        damping = max(damping / (5.0 if frac == 1.0 else 1.0), 1e-9)
        if history is not None:
            history.append(cost)
        if rel < tolerance:
            break
    return state, done
