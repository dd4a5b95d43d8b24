"""Small pure geometry helpers shared by the correspondence builder: similarity fits and mesh boundaries."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    """x -> scale * R @ x + t (row vectors: x @ R.T * scale + t)."""

    scale: float
    rotation: np.ndarray  # (3, 3), det +1
    translation: np.ndarray  # (3,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        p = np.asarray(points, dtype=np.float64)
        return self.scale * p @ self.rotation.T + self.translation


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
            with_scale: bool = True) -> Similarity:
    """Weighted least-squares similarity mapping src onto dst (Umeyama 1991), reflections excluded.

    Closed form, so it is the initialiser and the inner step of the ICP refinement alike.
    """
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"umeyama needs two (N, 3) arrays, got {a.shape} and {b.shape}")
    w = np.ones(len(a)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(a),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be (N,), non-negative, not all zero")
    if np.count_nonzero(w) < 3:
        raise ValueError("a similarity needs at least 3 weighted points")
    w = w / w.sum()
    mu_a = w @ a
    mu_b = w @ b
    ac = a - mu_a
    bc = b - mu_b
    cov = (bc * w[:, None]).T @ ac
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    rot = (u * d) @ vt
    var_a = float(w @ np.sum(ac * ac, axis=1))
    scale = float(np.sum(sig * d) / var_a) if with_scale else 1.0
    trans = mu_b - scale * rot @ mu_a
    return Similarity(scale=scale, rotation=rot, translation=trans)


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """(E, 2) edges used by exactly one polygon (triangles or quads; -1 padding is not supported)."""
    f = np.asarray(faces, dtype=np.int64)
    k = f.shape[1]
    edges = np.stack([f, np.roll(f, -1, axis=1)], axis=2).reshape(-1, 2)
    key = np.sort(edges, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    del k
    return edges[counts[inverse.ravel()] == 1]


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Closed boundary loops of a manifold-with-holes mesh, as vertex index arrays, longest first.

    The longest loop of a face mesh is its outer contour; the others are the eye and mouth openings.
    """
    edges = boundary_edges(faces)
    nxt: dict[int, list[int]] = {}
    for a, b in edges:
        nxt.setdefault(int(a), []).append(int(b))
    loops: list[np.ndarray] = []
    used: set[tuple[int, int]] = set()
    for a0, b0 in edges:
        a0, b0 = int(a0), int(b0)
        if (a0, b0) in used:
            continue
        loop = [a0]
        a, b = a0, b0
        while True:
            used.add((a, b))
            if b == a0:
                break
            loop.append(b)
            cands = [c for c in nxt.get(b, []) if (b, c) not in used]
            if not cands:  # open chain (non-manifold input): keep what we have
                break
            a, b = b, cands[0]
        loops.append(np.asarray(loop, dtype=np.int64))
    loops.sort(key=len, reverse=True)
    return loops
