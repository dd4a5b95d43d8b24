"""Pinhole camera and the model -> camera pose convention shared by the fitter, gaze and the renderer.

Frames:
- Model (ICT, FLAME, BFM alike): x towards the subject's left, y up, z out of the face towards the viewer.
- Camera: OpenCV, x right, y down, z forward (into the scene); pixel (0, 0) is the top-left corner of the
  top-left pixel, so an ideal principal point of an S x S crop is (S/2, S/2).

Pose: ``X_cam = R @ X_model + t`` where ``R`` is the FULL rotation, flip included. It factors as
``R = FLIP_YZ @ R_head``: ``FLIP_YZ = diag(1, -1, -1)`` (a 180 degree turn about x, a proper rotation) turns the
model frame into the camera frame for an upright face looking into the camera, and ``R_head`` is the head rotation
expressed in the model frame (identity = frontal). Consumers only need ``R`` and ``t``; the fitter optimises and
smooths ``R_head`` (small angles, continuous) and stores ``R`` (whose axis-angle is near pi for frontal faces).
Translation is in model units (cm for ICT). Intrinsics are the 4-vector (fx, fy, cx, cy) in crop pixels.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "FLIP_YZ",
    "default_intrinsics",
    "head_to_camera_rotation",
    "camera_to_head_rotation",
    "transform_points",
    "project_points",
    "project_points_np",
    "pixel_rays",
]

FLIP_YZ = np.diag([1.0, -1.0, -1.0])
"""Model axes -> camera axes for a frontal, upright face (y up -> y down, z towards viewer -> z towards camera)."""


def default_intrinsics(image_size: int, focal_factor: float = 2.0) -> np.ndarray:
    """(fx, fy, cx, cy) for a square crop: focal = focal_factor * size, principal point at the centre.

    focal_factor 2.0 is a ~28 degree field of view, typical of a phone/webcam portrait cropped around the face; the
    fit is insensitive to it within a factor ~1.5 (depth absorbs it), so a fixed value keeps frames comparable.
    """
    f = float(focal_factor) * float(image_size)
    c = 0.5 * float(image_size)
    return np.array([f, f, c, c], dtype=np.float64)


def head_to_camera_rotation(r_head: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) head rotation (model frame) -> full model -> camera rotation ``FLIP_YZ @ R_head``.

    Left-multiplying by diag(1, -1, -1) negates rows 1 and 2, done without a matmul.
    """
    sign = r_head.new_tensor([1.0, -1.0, -1.0])[:, None]
    return r_head * sign


def camera_to_head_rotation(r_full: torch.Tensor) -> torch.Tensor:
    """Inverse of ``head_to_camera_rotation`` (FLIP_YZ is its own inverse)."""
    return head_to_camera_rotation(r_full)


def transform_points(points: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """X_cam = R X + t for (..., N, 3) points, (..., 3, 3) rotations and (..., 3) translations."""
    return points @ rotation.transpose(-1, -2) + translation[..., None, :]


def project_points(points_cam: torch.Tensor, intrinsics: torch.Tensor, min_depth: float = 1e-6) -> torch.Tensor:
    """Perspective projection (..., N, 3) camera points -> (..., N, 2) pixels; intrinsics (..., 4) = fx, fy, cx, cy.

    Depth is clamped to ``min_depth`` so a bad iterate behind the camera gives a large finite residual, not inf/NaN.
    """
    z = points_cam[..., 2].clamp(min=min_depth)
    fx, fy, cx, cy = intrinsics.unbind(-1)
    u = fx[..., None] * points_cam[..., 0] / z + cx[..., None]
    v = fy[..., None] * points_cam[..., 1] / z + cy[..., None]
    return torch.stack([u, v], dim=-1)


def project_points_np(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """numpy version of ``project_points`` (no depth clamp: NaN/inf show points behind the camera)."""
    p = np.asarray(points_cam, dtype=np.float64)
    fx, fy, cx, cy = np.asarray(intrinsics, dtype=np.float64)
    return np.stack([fx * p[..., 0] / p[..., 2] + cx, fy * p[..., 1] / p[..., 2] + cy], axis=-1)


def pixel_rays(pixels: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(..., 2) pixels -> (..., 3) unit ray directions from the camera centre (camera coordinates)."""
    p = np.asarray(pixels, dtype=np.float64)
    fx, fy, cx, cy = np.asarray(intrinsics, dtype=np.float64)
    d = np.stack([(p[..., 0] - cx) / fx, (p[..., 1] - cy) / fy, np.ones(p.shape[:-1])], axis=-1)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)
