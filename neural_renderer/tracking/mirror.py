"""Mirror averaging: track each frame and its horizontal mirror image, and average the two results.

MediaPipe's networks are not mirror-equivariant: on the shared videos the iris centre relative to the eye corners
moves by 3-4 % of the eye width (2.5-4 degrees of gaze) when the frame is flipped, sometimes as a steady bias, and
the head angles by 0.3-0.7 degrees. Everything downstream inherits that handedness. Averaging the frame's result with
the un-mirrored result of the mirrored frame, a(x) = (f(x) + M f(M x)) / 2, is exactly mirror-equivariant
(a(M x) = M a(x)) and averages two partly independent estimates, at twice the tracking time (tracking is a small part
of the per-video cost; the fit dominates).

Un-mirroring: x -> width - x; landmark indices swap through the canonical mesh's symmetry (the canonical face of
face_landmarker.task is exactly symmetric; every vertex has its mirror vertex) and the irises swap as
468-472 <-> 473, 476, 475, 474, 477 (measured on flipped video); 'Left' / 'Right' blendshapes swap; the head
transform is conjugated by diag(-1, 1, 1, 1).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from .landmarker import N_LANDMARKS, LandmarkTrack

__all__ = ["IRIS_MIRROR", "landmark_mirror_permutation", "mirror_track", "average_tracks", "mirror_averaged"]

IRIS_MIRROR = {468: 473, 469: 476, 470: 475, 471: 474, 472: 477}
"""iris points of the subject's right eye -> their mirror points on the left eye (and back)."""


@lru_cache(maxsize=4)
def _permutation(task_path: str) -> tuple[int, ...]:
    from scipy.spatial import cKDTree

    from neural_renderer.morphable.mediapipe_mesh import read_canonical_geometry

    v = np.asarray(read_canonical_geometry(task_path).vertices, dtype=np.float64)
    dist, partner = cKDTree(v).query(v * [-1.0, 1.0, 1.0])
    if dist.max() > 1e-3 * np.abs(v).max() or not np.array_equal(partner[partner], np.arange(len(v))):
        raise ValueError(f"{task_path}: the canonical face mesh is not mirror-symmetric")
    perm = np.arange(N_LANDMARKS)
    perm[: len(v)] = partner
    for a, b in IRIS_MIRROR.items():
        perm[a], perm[b] = b, a
    return tuple(int(i) for i in perm)


def landmark_mirror_permutation(task_path: str | Path) -> np.ndarray:
    """(478,) index of each landmark's mirror partner (an involution), from the landmarker's canonical mesh."""
    return np.asarray(_permutation(str(task_path)), dtype=np.int64)


def _swap_sides(names: list[str]) -> np.ndarray:
    pos = {n: i for i, n in enumerate(names)}
    out = np.arange(len(names))
    for i, n in enumerate(names):
        for a, b in (("Left", "Right"), ("Right", "Left")):
            if n.endswith(a) and n[: -len(a)] + b in pos:
                out[i] = pos[n[: -len(a)] + b]
    return out


def mirror_track(track: LandmarkTrack, width: int, permutation: np.ndarray) -> LandmarkTrack:
    """The track of mirrored frames expressed for the original frames (or vice versa: the map is its own inverse)."""
    lm = track.landmarks[:, permutation].copy()
    lm[..., 0] = width - lm[..., 0]
    flip = np.diag([-1.0, 1.0, 1.0, 1.0]).astype(np.float32)
    return LandmarkTrack(
        landmarks=lm,
        blendshapes=track.blendshapes[:, _swap_sides(list(track.blendshape_names))].copy(),
        blendshape_names=list(track.blendshape_names),
        transforms=(flip @ track.transforms @ flip).astype(np.float32),
        valid=track.valid.copy(),
        n_faces=None if track.n_faces is None else track.n_faces.copy(),
    )


def average_tracks(a: LandmarkTrack, b: LandmarkTrack) -> LandmarkTrack:
    """Per frame: the mean where both found the face, the one that did otherwise. Rotations are averaged by
    projecting the mean matrix onto the rotations (SVD); translations and the rest are plain means."""
    if len(a.valid) != len(b.valid) or list(a.blendshape_names) != list(b.blendshape_names):
        raise ValueError("tracks to average differ in length or blendshape names")
    both = a.valid & b.valid

    def mean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.where(a.valid.reshape((-1,) + (1,) * (x.ndim - 1)), x, y).copy()
        out[both] = (x[both].astype(np.float64) + y[both]) / 2
        return out.astype(np.float32)

    transforms = mean(a.transforms, b.transforms)
    if both.any():
        r = (a.transforms[both, :3, :3].astype(np.float64) + b.transforms[both, :3, :3]) / 2
        u, s, vt = np.linalg.svd(r)
        scale = np.cbrt(np.prod(np.linalg.svd(a.transforms[both, :3, :3].astype(np.float64))[1], axis=1))
        transforms[both, :3, :3] = (u @ vt) * scale[:, None, None]  # MediaPipe's matrix may carry a uniform scale
    return LandmarkTrack(
        landmarks=mean(a.landmarks, b.landmarks),
        blendshapes=mean(a.blendshapes, b.blendshapes),
        blendshape_names=list(a.blendshape_names),
        transforms=transforms,
        valid=a.valid | b.valid,
        n_faces=a.n_faces
        if b.n_faces is None
        else (b.n_faces if a.n_faces is None else np.maximum(a.n_faces, b.n_faces)),
    )


def mirror_averaged(track: LandmarkTrack, mirrored: LandmarkTrack, width: int, task_path: str | Path) -> LandmarkTrack:
    """``track`` of the frames averaged with ``mirrored``, the track of the same frames flipped horizontally."""
    return average_tracks(track, mirror_track(mirrored, width, landmark_mirror_permutation(task_path)))
