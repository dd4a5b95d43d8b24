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


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None, with_scale: bool = True) -> Similarity:
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
    edges = np.stack([f, np.roll(f, -1, axis=1)], axis=2).reshape(-1, 2)
    key = np.sort(edges, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
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


def triangulate(faces: np.ndarray) -> np.ndarray:
    """(F, 3) triangles from triangles or quads (each quad split along its 0-2 diagonal)."""
    f = np.asarray(faces, dtype=np.int64)
    if f.shape[1] == 3:
        return f
    return np.concatenate([f[:, [0, 1, 2]], f[:, [0, 2, 3]]], axis=0)


def closest_point_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights (N, 3) of the closest point to p[i] on triangle (a[i], b[i], c[i]) (Ericson, RTCD 5.1.5).

    Vectorised over N; degenerate triangles fall back to their closest vertex.
    """
    p, a, b, c = (np.asarray(x, dtype=np.float64) for x in (p, a, b, c))
    ab, ac, ap = b - a, c - a, p - a
    d1 = np.einsum("ij,ij->i", ab, ap)
    d2 = np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3 = np.einsum("ij,ij->i", ab, bp)
    d4 = np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5 = np.einsum("ij,ij->i", ab, cp)
    d6 = np.einsum("ij,ij->i", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    n = len(p)
    bary = np.zeros((n, 3))
    done = np.zeros(n, dtype=bool)

    def put(mask: np.ndarray, w: np.ndarray) -> None:
        m = mask & ~done
        bary[m] = w[m]
        done[m] = True

    one = np.ones(n)
    zero = np.zeros(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        put((d1 <= 0) & (d2 <= 0), np.stack([one, zero, zero], 1))  # vertex a
        put((d3 >= 0) & (d4 <= d3), np.stack([zero, one, zero], 1))  # vertex b
        t = d1 / (d1 - d3)
        put((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - t, t, zero], 1))  # edge ab
        put((d6 >= 0) & (d5 <= d6), np.stack([zero, zero, one], 1))  # vertex c
        t = d2 / (d2 - d6)
        put((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - t, zero, t], 1))  # edge ac
        t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        put((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), np.stack([zero, 1 - t, t], 1))  # edge bc
        denom = va + vb + vc
        v = vb / denom
        w = vc / denom
        put(np.ones(n, dtype=bool), np.stack([1 - v - w, v, w], 1))  # interior
    bad = ~np.isfinite(bary).all(axis=1)
    if bad.any():  # degenerate: nearest corner
        corners = np.stack([a[bad], b[bad], c[bad]], 1)
        k = np.argmin(np.linalg.norm(corners - p[bad, None], axis=2), axis=1)
        bary[bad] = np.eye(3)[k]
    return bary


def vertex_triangle_csr(triangles: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """(offsets (V+1,), triangle ids) listing the triangles incident to each vertex."""
    t = np.asarray(triangles, dtype=np.int64)
    vert = t.ravel()
    tri = np.repeat(np.arange(len(t)), 3)
    order = np.argsort(vert, kind="stable")
    counts = np.bincount(vert, minlength=n_vertices)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return offsets, tri[order]


@dataclass(frozen=True)
class SurfacePoints:
    """Closest points on a triangle mesh: triangle id, barycentric weights, the point and its distance."""

    triangle: np.ndarray  # (N,) int64
    bary: np.ndarray  # (N, 3)
    point: np.ndarray  # (N, 3)
    distance: np.ndarray  # (N,)


def closest_points_on_mesh(
    queries: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, k: int = 8
) -> SurfacePoints:
    """Closest surface point of each query, searched among the triangles around its k nearest vertices.

    Exact for any query whose closest point lies on a triangle touching one of those vertices, which holds for
    points near a reasonably even mesh (the only use here: ICP onto a face model a few mm away).
    """
    from scipy.spatial import cKDTree

    q = np.asarray(queries, dtype=np.float64)
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles, dtype=np.int64)
    k = min(k, len(v))
    _, near = cKDTree(v).query(q, k=k)
    near = near.reshape(len(q), k)
    offsets, tri_ids = vertex_triangle_csr(t, len(v))
    owner: list[np.ndarray] = []
    cand: list[np.ndarray] = []
    for i in range(len(q)):
        c = np.unique(np.concatenate([tri_ids[offsets[j] : offsets[j + 1]] for j in near[i]]))
        cand.append(c)
        owner.append(np.full(len(c), i))
    tri = np.concatenate(cand)
    who = np.concatenate(owner)
    bary = closest_point_on_triangles(q[who], v[t[tri, 0]], v[t[tri, 1]], v[t[tri, 2]])
    pts = np.einsum("nk,nkd->nd", bary, v[t[tri]])
    dist = np.linalg.norm(pts - q[who], axis=1)
    # per query, the candidate with the smallest distance
    order = np.lexsort((dist, who))
    first = np.concatenate([[0], np.flatnonzero(np.diff(who[order])) + 1])
    best = order[first]
    if len(best) != len(q):  # a query whose neighbours touch no triangle at all
        raise ValueError("some query points have no triangle near them (isolated vertices?)")
    return SurfacePoints(triangle=tri[best], bary=bary[best], point=pts[best], distance=dist[best])
