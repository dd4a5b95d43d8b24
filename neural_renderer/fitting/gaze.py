"""Per-frame gaze from the iris landmarks and the fitted head: a ray / eyeball-sphere intersection per eye.

Model: each eyeball is a sphere of radius r whose centre is rigid in the head, taken from the morphable model's own
eye geometry (``morphable/eyes.py``: ICT's sclera spheres, moved with the fitted identity; for a model file without
eyeball data, ICT's centre offset from the eye corners, applied to the fitted face's corners). Per frame the centre
goes to camera coordinates with the fitted pose, the 2D iris centre is back-projected as a ray from the camera, and
the iris is where the ray first meets the sphere (if it misses, the point of the sphere closest to the ray).
Gaze = unit(iris - centre). Only the iris centre's 2D position is used: MediaPipe's iris depth is a guess, the
fitted head depth is not. Dropped: the corner midpoint pushed straight back (the iris rests above the corner line,
so every gaze came out 5-15 degrees too high).

Blinks: with the lids closed the iris landmarks are guesses (they follow the lids down). Frames whose blink score
(the larger of MediaPipe's eyeBlinkLeft / eyeBlinkRight) exceeds ``GazeConfig.blink_threshold`` are marked invalid
and their gaze interpolated from the open-eye frames around them, like frames without landmarks. A video with no
usable open-eye frame at all gets the head's forward direction (head-relative gaze (0, 0)), so gaze is never NaN
where the head pose exists; ``valid`` says which frames were measured.

Conventions (MPIIGaze / ETH-XGaze): vectors in OpenCV camera coordinates (x right, y down, z forward);
pitch = arcsin(-y), yaw = arctan2(-x, -z), in degrees: looking into the camera gives (0, 0), looking up a positive
pitch, looking towards the image's left (the subject's right, for a frontal face) a positive yaw.
Head-relative gaze: the vector in head (model) coordinates, R^T g (x = subject's left, y up, z out of the face);
its pitch / yaw are taken after FLIP_YZ (the same axes as the camera's for a frontal face), so (0, 0) is looking
straight out of the face and the signs match the camera ones.
Eye order everywhere: (subject's right, subject's left).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PipelineInputError
from ..morphable.eyes import Eyeballs, eye_corner_vertices, eyeballs_from_corners
from .camera import FLIP_YZ, pixel_rays, project_points_np
from .config import GazeConfig

__all__ = [
    "GazeResult",
    "IRIS_CENTERS",
    "pitch_yaw_from_vectors",
    "vectors_from_pitch_yaw",
    "eye_corner_vertices",
    "eyeball_model",
    "eyeball_centers_model",
    "blink_scores",
    "order_iris_points",
    "ray_sphere_intersection",
    "estimate_gaze",
    "gaze_from_fit",
]

IRIS_CENTERS = (468, 473)
"""MediaPipe's two iris-centre landmarks; which one is which eye is decided from geometry (order_iris_points)."""

_UNIT_PER_CM = {"cm": 1.0, "mm": 10.0, "m": 0.01}


@dataclass
class GazeResult:
    """Per-frame gaze (T frames; eye axis ordered subject's right, left). NaN where no estimate exists."""

    eye_vectors: np.ndarray  # (T, 2, 3) unit, camera coordinates
    vector: np.ndarray  # (T, 3) combined unit vector (normalised sum of the two eyes), camera coordinates
    eye_pitch_yaw_deg: np.ndarray  # (T, 2, 2)
    pitch_yaw_deg: np.ndarray  # (T, 2)
    head_eye_vectors: np.ndarray  # (T, 2, 3) unit, head (model) coordinates
    head_vector: np.ndarray  # (T, 3)
    head_eye_pitch_yaw_deg: np.ndarray  # (T, 2, 2)
    head_pitch_yaw_deg: np.ndarray  # (T, 2)
    eyeball_centers: np.ndarray  # (T, 2, 3) camera coordinates
    iris_points: np.ndarray  # (T, 2, 3) camera coordinates, on the eyeball sphere
    hit: np.ndarray  # (T, 2) bool: the iris ray met the sphere (False: closest point used)
    valid: np.ndarray  # (T,) bool: frame had iris landmarks and open eyes (others interpolated or NaN)
    eyes_closed: np.ndarray | None = None  # (T,) bool: blink score above the threshold (a subset of ~valid)
    blink_score: np.ndarray | None = None  # (T,) max(eyeBlinkLeft, eyeBlinkRight); NaN where unknown

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays of the ``gaze`` storage stage."""
        f32 = np.float32
        return {
            "eye_vectors": self.eye_vectors.astype(f32),
            "vector": self.vector.astype(f32),
            "eye_pitch_yaw_deg": self.eye_pitch_yaw_deg.astype(f32),
            "pitch_yaw_deg": self.pitch_yaw_deg.astype(f32),
            "head_vector": self.head_vector.astype(f32),
            "head_pitch_yaw_deg": self.head_pitch_yaw_deg.astype(f32),
            "valid": self.valid.astype(bool),
            "eyes_closed": (
                np.zeros(len(self.valid), bool) if self.eyes_closed is None else self.eyes_closed.astype(bool)
            ),
            "blink_score": (
                np.full(len(self.valid), np.nan, f32) if self.blink_score is None else self.blink_score.astype(f32)
            ),
        }


def _unit(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)


def pitch_yaw_from_vectors(vectors: np.ndarray) -> np.ndarray:
    """(..., 3) gaze vectors (camera-style axes) -> (..., 2) pitch, yaw in degrees (see the module docstring)."""
    v = _unit(np.asarray(vectors, dtype=np.float64))
    pitch = np.arcsin(np.clip(-v[..., 1], -1.0, 1.0))
    yaw = np.arctan2(-v[..., 0], -v[..., 2])
    return np.degrees(np.stack([pitch, yaw], axis=-1))


def vectors_from_pitch_yaw(pitch_yaw_deg: np.ndarray) -> np.ndarray:
    """Inverse of ``pitch_yaw_from_vectors``: (..., 2) degrees -> (..., 3) unit vectors."""
    py = np.radians(np.asarray(pitch_yaw_deg, dtype=np.float64))
    p, y = py[..., 0], py[..., 1]
    return np.stack([-np.cos(p) * np.sin(y), -np.sin(p), -np.cos(p) * np.cos(y)], axis=-1)


def eyeball_model(model: Any, source: str = "auto") -> Eyeballs:
    """The eyeball spheres gaze uses: the model file's own (``model.eyeballs``) or the eye-corner fallback.

    source: 'model' (the file must have them: a clear error otherwise), 'corners' (the fallback always), 'auto'
    (the model's when present, else the fallback).
    """
    own = getattr(model, "eyeballs", None)
    if source not in ("auto", "model", "corners"):
        raise ValueError(f"eyeball source must be auto, model or corners, got {source!r}")
    if source == "model" and own is None:
        raise PipelineInputError(
            None,
            f"morphable model {getattr(model, 'name', '')!r} has no eyeball data "
            "(eyeball_centers): rebuild it with the ICT converter from the full mesh, or "
            "set gaze.eyeballs: corners (or auto) for the eye-corner fallback",
        )
    if own is not None and source != "corners":
        return own
    return eyeballs_from_corners(model)


def eyeball_centers_model(model: Any, identity: np.ndarray | None, source: str = "auto") -> np.ndarray:
    """(2, 3) eyeball centres (subject's right, left) in model coordinates for a fitted identity (``eyeball_model``)."""
    return eyeball_model(model, source).centers_for(identity)


def blink_scores(blendshapes: np.ndarray, names: Any) -> np.ndarray:
    """(T,) eyes-closed score: the larger of the two eyeBlink blendshapes (MediaPipe 'eyeBlinkLeft' or ICT-style
    'eyeBlink_L' names); NaN rows stay NaN."""
    key = {str(n).lower().replace("_", ""): i for i, n in enumerate(names)}
    cols = [
        next((key[k] for k in aliases if k in key), None)
        for aliases in (("eyeblinkleft", "eyeblinkl"), ("eyeblinkright", "eyeblinkr"))
    ]
    if None in cols:
        raise ValueError(f"blendshapes lack eyeBlinkLeft / eyeBlinkRight (names: {list(names)[:6]}...)")
    bs = np.asarray(blendshapes, dtype=np.float64)
    return bs[:, cols].max(axis=1)


def order_iris_points(iris2d: np.ndarray, eye_centers_2d: np.ndarray) -> np.ndarray:
    """Assign the two iris points of each frame to the eyes: (T, 2, 2) in, (T, 2, 2) ordered like eye_centers_2d.

    Per frame, the pairing with the smaller total distance to the projected eyeball centres wins.
    """
    iris = np.asarray(iris2d, dtype=np.float64)
    ec = np.asarray(eye_centers_2d, dtype=np.float64)
    keep = np.linalg.norm(iris - ec, axis=-1).sum(-1)
    swap = np.linalg.norm(iris[:, ::-1] - ec, axis=-1).sum(-1)
    out = iris.copy()
    s = swap < keep
    out[s] = iris[s, ::-1]
    return out


def ray_sphere_intersection(
    directions: np.ndarray, centers: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest intersection of rays from the origin with spheres: (..., 3) unit directions and centres.

    Returns (points (..., 3), hit (...)). Where a ray misses, the point of the sphere closest to the ray.
    """
    d = np.asarray(directions, dtype=np.float64)
    c = np.asarray(centers, dtype=np.float64)
    b = (d * c).sum(-1)  # distance along the ray to the point closest to the centre
    disc = b * b - ((c * c).sum(-1) - radius * radius)
    hit = disc >= 0
    t_near = b - np.sqrt(np.where(hit, disc, 0.0))
    on_ray = t_near[..., None] * d
    closest = b[..., None] * d
    off = _unit(closest - c)
    miss_pt = c + radius * off
    return np.where(hit[..., None], on_ray, miss_pt), hit


def _interpolate_unit(vectors: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Linear interpolation of (T, ..., 3) unit vectors over frames where ``ok`` is False, renormalised."""
    v = np.asarray(vectors, dtype=np.float64)
    if ok.all() or not ok.any():
        return v.copy()
    flat = v.reshape(len(v), -1).copy()
    t = np.arange(len(v))
    for k in range(flat.shape[1]):
        flat[~ok, k] = np.interp(t[~ok], t[ok], flat[ok, k])
    return _unit(flat.reshape(v.shape))


def estimate_gaze(
    iris2d: np.ndarray,
    eyeball_centers: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    intrinsics: np.ndarray,
    eyeball_radius: float,
    valid: np.ndarray | None = None,
    interpolate: bool = True,
    eyes_closed: np.ndarray | None = None,
) -> GazeResult:
    """Gaze per frame and eye from 2D iris centres and the head pose.

    iris2d: (T, 2, 2) pixel iris centres ordered (subject's right, left) (``order_iris_points``);
    eyeball_centers: (2, 3) model coordinates (``eyeball_centers_model``); rotation (T, 3, 3) / translation (T, 3)
    the full model -> camera pose (``FitResult.rotation`` / ``.translation``); intrinsics (4,) fx, fy, cx, cy;
    eyeball_radius in model units. valid: (T,) frames with iris landmarks (default: finite iris2d); eyes_closed:
    (T,) frames to treat as invalid because the lids are shut. Invalid frames get interpolated vectors when
    ``interpolate`` (else NaN); with no valid frame at all, interpolation falls back to the head's forward direction.
    """
    iris = np.asarray(iris2d, dtype=np.float64)
    rot = np.asarray(rotation, dtype=np.float64)
    tr = np.asarray(translation, dtype=np.float64)
    n = iris.shape[0]
    if iris.shape != (n, 2, 2) or rot.shape != (n, 3, 3) or tr.shape != (n, 3):
        raise ValueError(
            f"shapes: iris2d {iris.shape} (T,2,2), rotation {rot.shape} (T,3,3), translation {tr.shape} (T,3)"
        )
    pose_ok = np.isfinite(rot).all(axis=(1, 2)) & np.isfinite(tr).all(axis=1)
    ok = np.isfinite(iris).all(axis=(1, 2)) & pose_ok
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    closed = np.zeros(n, dtype=bool) if eyes_closed is None else np.asarray(eyes_closed, dtype=bool).reshape(n)
    ok &= ~closed
    rot0 = np.where(pose_ok[:, None, None], rot, np.eye(3))
    tr0 = np.where(pose_ok[:, None], tr, 0.0)
    centers = np.einsum("tij,ej->tei", rot0, np.asarray(eyeball_centers, dtype=np.float64)) + tr0[:, None, :]
    rays = pixel_rays(np.where(ok[:, None, None], iris, 0.0), intrinsics)
    points, hit = ray_sphere_intersection(rays, centers, float(eyeball_radius))
    eyes = _unit(points - centers)
    eyes[~ok] = np.nan
    hit &= ok[:, None]
    if interpolate:
        if ok.any():
            eyes = _interpolate_unit(eyes, ok)
        else:  # nothing measured (e.g. eyes closed throughout): look straight out of the face
            eyes = np.repeat((rot0 @ np.array([0.0, 0.0, 1.0]))[:, None, :], 2, axis=1)
        eyes[~pose_ok] = np.nan
    combined = _unit(eyes.sum(axis=1))
    # head coordinates: R^T g; angles on FLIP_YZ R^T g (camera-style axes of a frontal head)
    rt = np.swapaxes(rot, 1, 2)
    head_eyes = np.einsum("tij,tej->tei", rt, eyes)
    head_comb = np.einsum("tij,tj->ti", rt, combined)
    return GazeResult(
        eye_vectors=eyes,
        vector=combined,
        eye_pitch_yaw_deg=pitch_yaw_from_vectors(eyes),
        pitch_yaw_deg=pitch_yaw_from_vectors(combined),
        head_eye_vectors=head_eyes,
        head_vector=head_comb,
        head_eye_pitch_yaw_deg=pitch_yaw_from_vectors(head_eyes @ FLIP_YZ.T),
        head_pitch_yaw_deg=pitch_yaw_from_vectors(head_comb @ FLIP_YZ.T),
        eyeball_centers=np.where(pose_ok[:, None, None], centers, np.nan),
        iris_points=np.where(ok[:, None, None], points, np.nan),
        hit=hit,
        valid=ok,
        eyes_closed=closed,
    )


def gaze_from_fit(
    landmarks: np.ndarray,
    fit: Any,
    model: Any,
    cfg: GazeConfig | None = None,
    valid: np.ndarray | None = None,
    blink_score: np.ndarray | None = None,
) -> GazeResult:
    """Gaze for a fitted sequence: the gaze stage in one call.

    landmarks: (T, 478, 2|3) crop-space MediaPipe landmarks (the same crop the fit used); fit: a FitResult, or the
    ``fit`` stage's arrays as a mapping (identity, rotation, translation, intrinsics); model: the FULL morphable model;
    valid: frames with landmarks (default: finite iris points); blink_score: (T,) ``blink_scores`` of the track
    (None: no blink test). Iris points 468 / 473 are assigned to the eyes by their distance to the projected
    eyeball centres; the eyeballs come from ``eyeball_model(model, cfg.eyeballs)``.
    """
    cfg = cfg or GazeConfig()
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1] <= max(IRIS_CENTERS) or lm.shape[2] < 2:
        raise ValueError(f"landmarks must be (T, 478, 2|3) with iris points, got {lm.shape}")
    per_cm = _UNIT_PER_CM.get(str(getattr(model, "units", "cm")), 1.0)

    def get(name: str) -> np.ndarray:
        return np.asarray(fit[name] if isinstance(fit, Mapping) else getattr(fit, name), dtype=np.float64)

    eyes = eyeball_model(model, cfg.eyeballs)
    centres = eyes.centers_for(get("identity"))
    radius = eyes.radius if cfg.eyeball_radius_cm is None else cfg.eyeball_radius_cm * per_cm
    rot, tr, intr = get("rotation"), get("translation"), get("intrinsics")
    cam = np.einsum("tij,ej->tei", rot, centres) + tr[:, None, :]
    iris = order_iris_points(lm[:, list(IRIS_CENTERS), :2], project_points_np(cam, intr))
    closed = None
    score = None
    if blink_score is not None:
        score = np.asarray(blink_score, dtype=np.float64).reshape(len(lm))
        closed = np.nan_to_num(score, nan=0.0) > cfg.blink_threshold
    res = estimate_gaze(iris, centres, rot, tr, intr, radius, valid=valid, eyes_closed=closed)
    res.blink_score = score
    return res
