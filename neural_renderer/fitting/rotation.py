"""Batched rotation conversions (torch, differentiable) with numpy wrappers.

The fitter optimises per-frame axis-angle vectors, so the exponential map must have finite values and gradients at
exactly zero (frames start at a zero head rotation), and the log map must be stable near pi because the full
model -> camera rotation of a frontal face is a 180 degree turn about x (see ``camera.py``).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "axis_angle_to_matrix_np",
    "matrix_to_axis_angle_np",
]

# Below this squared angle the Taylor series are exact to float64 precision far beyond what float32 needs.
_SMALL_SQ = 1e-6


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: (..., 3) axis-angle (radians) -> (..., 3, 3) rotation matrices.

    R = I + a K + b K^2 with a = sin(t)/t and b = (1 - cos t)/t^2, K the skew matrix of the (unnormalised) vector.
    Near t = 0 both coefficients use their Taylor series in t^2, and the sqrt is taken only of a value kept away from
    zero, so values and gradients stay finite at exactly zero.
    """
    theta_sq = (axis_angle * axis_angle).sum(-1)
    small = theta_sq < _SMALL_SQ
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = torch.sqrt(safe_sq)
    a = torch.where(small, 1.0 - theta_sq / 6.0 + theta_sq * theta_sq / 120.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta_sq / 24.0 + theta_sq * theta_sq / 720.0, (1.0 - torch.cos(theta)) / safe_sq)
    k = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand(k.shape)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z) with w >= 0.

    Shepperd's method: of the four algebraically equal formulas, each row is taken from the one whose divisor is
    largest, which is what keeps 180 degree rotations (w ~ 0) accurate.
    """
    m = matrix
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 * q_i^2 for i = w, x, y, z
    q_sq = torch.stack(
        [1.0 + m00 + m11 + m22, 1.0 + m00 - m11 - m22, 1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22], dim=-1
    )
    four_abs_q = 2.0 * torch.sqrt(torch.clamp(q_sq, min=1e-12))  # 4 |q_i|
    # Row i equals 4 q_i * q; dividing by 4 |q_i| gives +-q, well conditioned for the row with the largest |q_i|
    # (at least 1/2, since the four q_sq sum to 4).
    cands = torch.stack(
        [
            torch.stack([q_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, q_sq[..., 1], m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, q_sq[..., 2], m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, q_sq[..., 3]], dim=-1),
        ],
        dim=-2,
    )
    cands = cands / four_abs_q[..., :, None]
    best = q_sq.argmax(dim=-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle vectors with angle in [0, pi].

    Goes through the quaternion so that angles near pi keep an accurate axis (the trace formula loses it), then uses
    atan2 for the angle and a Taylor series for angle / sin(angle / 2) near zero. At exactly pi the two opposite
    axis-angle vectors are the same rotation; either may be returned.
    """
    q = matrix_to_quaternion(matrix)
    xyz = q[..., 1:]
    n = torch.linalg.norm(xyz, dim=-1)
    half = torch.atan2(n, q[..., 0])
    angle = 2.0 * half
    small = angle.abs() < 1e-3
    safe_angle = torch.where(small, torch.ones_like(angle), angle)
    # sin(angle/2)/angle; series 1/2 - angle^2/48 near 0
    s = torch.where(small, 0.5 - angle * angle / 48.0, torch.sin(half) / safe_angle)
    return xyz / s[..., None]


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Zhou et al. continuous 6D representation (..., 6) -> (..., 3, 3): Gram-Schmidt on the two stored columns."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = torch.nn.functional.normalize(a1, dim=-1)
    b2 = torch.nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns, the inverse of ``rotation_6d_to_matrix``."""
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def axis_angle_to_matrix_np(axis_angle: np.ndarray) -> np.ndarray:
    """numpy wrapper (float64 internally) of ``axis_angle_to_matrix``."""
    a = np.asarray(axis_angle, dtype=np.float64)
    return axis_angle_to_matrix(torch.from_numpy(a)).numpy()


def matrix_to_axis_angle_np(matrix: np.ndarray) -> np.ndarray:
    """numpy wrapper (float64 internally) of ``matrix_to_axis_angle``."""
    m = np.asarray(matrix, dtype=np.float64)
    return matrix_to_axis_angle(torch.from_numpy(m)).numpy()
