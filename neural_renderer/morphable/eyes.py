"""Eyeball geometry of a morphable model: two spheres, rigid in the head, taken from the model's own eye meshes.

Gaze is the direction from an eyeball's centre to the iris (``fitting/gaze.py``), so the centre has to sit where the
real eye's centre is: a centre placed at the height of the eye corners puts the iris a few millimetres 'above' it and
biases every gaze upwards by 5-15 degrees. ICT-FaceKit's full mesh has eyeballs (vertices 21451-23020 and
23021-24590; the first 770 of each are the sclera); a least-squares sphere through each sclera gives the centre and
radius. The converter stores the centres of the neutral mesh, their offset per identity component (a sphere fitted to
each identity OBJ) and the mean radius in the npz (``eyeball_*`` arrays).

Fallback for a model file without eyeball data (the face-region npz in ../shared, FLAME, BFM): ICT's generic eyeball
placement relative to the eye corners (Multi-PIE 36/39, 42/45), ``ICT_CORNER_OFFSET_CM``, measured once on ICT's
neutral mesh (tests re-measure it from the upstream OBJ). It follows the fitted face's eye corners, so it adapts
to the identity's eye position but not to its eyeball depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Eyeballs",
    "ICT_EYEBALL_RANGES",
    "ICT_SCLERA_VERTICES",
    "ICT_CORNER_OFFSET_CM",
    "ICT_EYEBALL_RADIUS_CM",
    "fit_sphere",
    "ict_eyeballs",
    "eye_corner_vertices",
    "eyeballs_from_corners",
]

ICT_EYEBALL_RANGES = ((21451, 23021), (23021, 24591))
"""ICT-FaceKit full-mesh vertex ranges of the two eyeballs (upstream order: the subject's left eye first)."""
ICT_SCLERA_VERTICES = 770
"""the first 770 vertices of each ICT eyeball are its sclera (the rest: cornea, iris, pupil, inside)."""
ICT_CORNER_OFFSET_CM = (0.0349, 0.2596, -0.9170)
"""(towards the nose, up, back) from the eye-corner midpoint to the sclera-sphere centre on ICT's neutral mesh (cm)."""
ICT_EYEBALL_RADIUS_CM = 1.5773
"""radius of the least-squares sphere through ICT's sclera vertices (cm; both eyes agree)."""


@dataclass(frozen=True, eq=False)
class Eyeballs:
    """Two eyeball spheres of a morphable model, rows (subject's right, subject's left), in model units.

    centre(identity) = centers + sum_k identity[k] * identity_basis[k]: linear in the identity like the mesh.
    """

    centers: np.ndarray  # (2, 3)
    radius: float
    identity_basis: np.ndarray  # (Ki, 2, 3); (0, 2, 3) when the identity does not move the eyeballs

    def __post_init__(self) -> None:
        c = np.array(self.centers, dtype=np.float64)
        b = np.array(self.identity_basis, dtype=np.float64).reshape(-1, 2, 3)
        if c.shape != (2, 3) or not np.isfinite(c).all() or not np.isfinite(b).all():
            raise ValueError(f"eyeball centers must be finite (2, 3), got {c.shape}")
        if not (np.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"eyeball radius must be > 0, got {self.radius}")
        if c[0, 0] > c[1, 0]:
            raise ValueError("eyeball rows must be (subject's right, left): the first has the smaller x")
        for name, arr in (("centers", c), ("identity_basis", b)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "radius", float(self.radius))

    def centers_for(self, identity: np.ndarray | None) -> np.ndarray:
        """(2, 3) centres for identity coefficients (shorter vectors: the missing ones are 0)."""
        out = self.centers.copy()
        if identity is not None and len(self.identity_basis):
            a = np.asarray(identity, dtype=np.float64).reshape(-1)[: len(self.identity_basis)]
            out += np.tensordot(a, self.identity_basis[: len(a)], axes=1)
        return out


def fit_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere through (N >= 4, 3) points: |p|^2 = 2 p.c + (r^2 - |c|^2), linear in (c, r^2 - |c|^2)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 4:
        raise ValueError(f"need (N >= 4, 3) points, got {p.shape}")
    a = np.concatenate([2 * p, np.ones((len(p), 1))], axis=1)
    sol = np.linalg.lstsq(a, (p * p).sum(1), rcond=None)[0]
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


def ict_eyeballs(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """(2, 3) sclera-sphere centres (subject's right, left) and their mean radius from a FULL ICT mesh (26719, 3)."""
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) < ICT_EYEBALL_RANGES[1][1]:
        raise ValueError(f"the ICT eyeballs need the full mesh (>= {ICT_EYEBALL_RANGES[1][1]} vertices), got {len(v)}")
    fits = [fit_sphere(v[start : start + ICT_SCLERA_VERTICES]) for start, _ in ICT_EYEBALL_RANGES]
    centres = np.stack([c for c, _ in fits])
    order = np.argsort(centres[:, 0])  # the subject's right eye has x < 0 in the model frame
    return centres[order], float(np.mean([r for _, r in fits]))


def eye_corner_vertices(model) -> np.ndarray:
    """(2, 2) vertex indices of the eye corners, rows (subject's right eye, left eye), from ``landmarks_68``.

    Multi-PIE points 36/39 and 42/45 are the two eyes' corners; which row is the subject's right is decided by the
    mean face's x (the subject's right has x < 0 in the model frame), not by the 68-point naming.
    """
    lm = getattr(model, "landmarks_68", None)
    if lm is None:
        raise ValueError("the morphable model has no landmarks_68, needed to locate the eye corners")
    lm = np.asarray(lm, dtype=np.int64)
    pairs = np.array([[lm[36], lm[39]], [lm[42], lm[45]]])
    x = np.asarray(model.neutral)[pairs][..., 0].mean(axis=1)
    return pairs if x[0] < x[1] else pairs[::-1]


def eyeballs_from_corners(
    model, offset_cm: tuple[float, float, float] = ICT_CORNER_OFFSET_CM, radius_cm: float = ICT_EYEBALL_RADIUS_CM
) -> Eyeballs:
    """The fallback: centres at the eye-corner midpoints of the model (and of each identity component) plus ICT's
    corner -> centre offset, mirrored per side (x towards the nose). Model units must be cm (every loader's)."""
    corners = eye_corner_vertices(model)
    idx = corners.ravel()
    mid = np.asarray(model.neutral, dtype=np.float64)[idx].reshape(2, 2, 3).mean(axis=1)
    basis = np.asarray(model.identity_basis, dtype=np.float64)[:, idx].reshape(-1, 2, 2, 3).mean(axis=2)
    medial, up, back = offset_cm
    offset = np.array([[medial, up, back], [-medial, up, back]])  # right eye: the nose is at +x
    return Eyeballs(centers=mid + offset, radius=radius_cm, identity_basis=basis)
