"""Which morphable-model vertex each tracked MediaPipe landmark corresponds to.

The fitter compares projected model vertices with tracked 2D landmarks, so it needs (MediaPipe index, model
vertex) pairs. Sparse: the 68 Multi-PIE points both sides define. Dense: MediaPipe's canonical mesh is aligned to
the model (similarity from the 68 pairs, then ICP that also fits the model's identity to the canonical face, so
differences in face shape do not shift the matches), and each canonical vertex takes its nearest model vertex.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from neural_renderer.assets import sha256_file
from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError

from .geometry import Similarity, boundary_loops, closest_points_on_mesh, triangulate, umeyama
from .mediapipe_mesh import JAW_68, MEDIAPIPE_68, read_canonical_geometry
from .model import LinearMorphableModel


@dataclass(frozen=True, eq=False)
class CanonicalAlignment:
    """How MediaPipe's canonical mesh sits on the model, and how well (distances in model units, cm for ICT)."""

    similarity: Similarity  # canonical -> model frame
    identity: np.ndarray  # (Ki,) model identity that best matches the canonical face
    # (68,) |aligned canonical[MEDIAPIPE_68] - model(identity)[landmarks_68]|; (0,) for a model without landmarks
    landmark_residual: np.ndarray
    surface_residual: np.ndarray  # (468,) distance of each aligned canonical vertex to the model surface
    iterations: int

    def summary(self) -> dict[str, float]:
        out = {
            "scale": float(self.similarity.scale),
            "surface_residual_median": float(np.median(self.surface_residual)),
            "surface_residual_max": float(np.max(self.surface_residual)),
            "identity_norm": float(np.linalg.norm(self.identity)),
        }
        lm = self.landmark_residual
        if lm.size:
            inner = lm[JAW_68.stop :]
            out.update(
                landmark_residual_mean=float(lm.mean()),
                landmark_residual_max=float(lm.max()),
                landmark_inner_residual_mean=float(inner.mean()),
                landmark_inner_residual_max=float(inner.max()),
            )
        return out


@dataclass(frozen=True, eq=False)
class Correspondence:
    """Pairs (mediapipe_idx[i], model_vertex[i]) with a confidence weight for the fitter's landmark loss.

    residual[i] is the distance between the aligned canonical point and its model vertex (model units): how far
    apart the two templates put the 'same' point, i.e. the floor of the fit error for that landmark (NaN when not
    known, e.g. pairs reloaded from a file that did not store it).
    """

    mediapipe_idx: np.ndarray  # (L,) int64
    model_vertex: np.ndarray  # (L,) int64
    weight: np.ndarray  # (L,) float32
    residual: np.ndarray | None = None  # (L,) float32
    alignment: CanonicalAlignment | None = None

    def __post_init__(self) -> None:
        dtypes = {"mediapipe_idx": np.int64, "model_vertex": np.int64, "weight": np.float32, "residual": np.float32}
        n = len(self.mediapipe_idx)
        if self.residual is None:
            object.__setattr__(self, "residual", np.full(n, np.nan, dtype=np.float32))
        for label, dtype in dtypes.items():
            arr = np.asarray(getattr(self, label), dtype=dtype).ravel()
            if len(arr) != n:
                raise ValueError(f"Correspondence.{label} has {len(arr)} entries, expected {n}")
            object.__setattr__(self, label, arr)

    def __len__(self) -> int:
        return len(self.mediapipe_idx)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the caller to store (npz/HDF5)."""
        return {
            "mediapipe_idx": self.mediapipe_idx,
            "model_vertex": self.model_vertex,
            "weight": self.weight,
            "residual": self.residual,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Correspondence:
        n = len(arrays["mediapipe_idx"])
        return cls(
            mediapipe_idx=arrays["mediapipe_idx"],
            model_vertex=arrays["model_vertex"],
            weight=arrays.get("weight", np.ones(n)),
            residual=arrays.get("residual"),
        )


def align_canonical_to_model(
    model: LinearMorphableModel,
    canonical: np.ndarray,
    *,
    contour: np.ndarray | None = None,
    contour_weight: float = 0.3,
    identity_reg: float = 0.002,
    landmark_weight: float = 1.0,
    iterations: int = 10,
    start_distance: float = 2.0,
    end_distance: float = 0.75,
    init: Similarity | None = None,
) -> CanonicalAlignment:
    """Similarity + identity coefficients that put the canonical mesh (468, 3) onto the model surface.

    Initialised from the 68 landmark pairs (or from `init`, a canonical -> model similarity, for models without a
    landmark embedding; the landmark term is then off); then ICP to the closest surface points of the current
    identity, with a match radius shrinking from start_distance to end_distance (model units) so that the far-off
    points do not pull.
    identity_reg is the ridge weight per unit coefficient relative to the mean squared residual (cm^2 for ICT).
    contour: canonical indices on the face silhouette, down-weighted by contour_weight (they slide with the view).
    """
    if model.landmarks_68 is None and init is None:
        raise ValueError(f"{model.name}: without landmarks_68 the alignment needs init= (canonical -> model)")
    if not len(model.faces):
        raise ValueError(f"{model.name}: the alignment needs the model's surface (faces)")
    p = np.asarray(canonical, dtype=np.float64)
    mp68 = np.asarray(MEDIAPIPE_68)
    base_w = np.ones(len(p))
    if contour is not None:
        base_w[np.asarray(contour)] = contour_weight
    init_w = np.ones(68)
    init_w[JAW_68] = contour_weight
    lm_w = init_w * (landmark_weight if model.landmarks_68 is not None else 0.0)

    x0 = model.neutral.astype(np.float64)
    basis = model.identity_basis.astype(np.float64)  # (K, V, 3)
    tris = triangulate(model.faces)
    outer = boundary_loops(model.faces)[0]
    on_outer = np.zeros(model.n_vertices, dtype=bool)
    on_outer[outer] = True
    lm_v = model.landmarks_68 if model.landmarks_68 is not None else np.zeros(68, dtype=np.int64)

    sim = umeyama(p[mp68], x0[lm_v], init_w) if init is None else init
    beta = np.zeros(model.n_identity)
    x = x0
    n_iter = max(int(iterations), 0)
    for it in range(n_iter):
        radius = start_distance + (end_distance - start_distance) * it / max(n_iter - 1, 1)
        q = sim.apply(p)
        sp = closest_points_on_mesh(q, x, tris)
        corner = tris[sp.triangle]  # (N, 3)
        ok = (sp.distance < radius) & ~on_outer[corner].any(axis=1)
        w = np.where(ok, base_w, 0.0)
        # Pairs: dense (canonical point ~ barycentric model point) and landmark (canonical ~ landmark vertex).
        use_lm = lm_w > 0
        src = np.concatenate([p[ok], p[mp68[use_lm]]])
        idx = np.concatenate([corner[ok], np.repeat(lm_v[use_lm, None], 3, axis=1)])
        bw = np.concatenate([sp.bary[ok], np.tile([1.0, 0.0, 0.0], (int(use_lm.sum()), 1))])
        pw = np.concatenate([w[ok], lm_w[use_lm]])
        # identity: min sum pw |sum_j bw_j (x0 + B beta)[idx_j] - sim(src)|^2 + reg * sum(pw) |beta|^2
        if model.n_identity:
            target = sim.apply(src) - np.einsum("nk,nkd->nd", bw, x0[idx])
            a = np.einsum("nk,cnkd->ndc", bw, basis[:, idx])  # (n, 3, K)
            a2 = a.reshape(-1, model.n_identity)
            wr = np.repeat(pw, 3)
            lhs = a2.T @ (a2 * wr[:, None]) + identity_reg * pw.sum() * np.eye(model.n_identity)
            beta = np.linalg.solve(lhs, a2.T @ (wr * target.ravel()))
            x = x0 + np.tensordot(beta, basis, axes=1)
        dst = np.einsum("nk,nkd->nd", bw, x[idx])
        sim = umeyama(src, dst, pw)
    q = sim.apply(p)
    surf = closest_points_on_mesh(q, x, tris).distance
    lm_res = np.linalg.norm(q[mp68] - x[lm_v], axis=1) if model.landmarks_68 is not None else np.zeros(0)
    return CanonicalAlignment(
        similarity=sim,
        identity=beta.astype(np.float32),
        landmark_residual=lm_res.astype(np.float32),
        surface_residual=surf.astype(np.float32),
        iterations=n_iter,
    )


def dense_pairs(
    model: LinearMorphableModel,
    canonical: np.ndarray,
    alignment: CanonicalAlignment,
    *,
    contour: np.ndarray | None = None,
    contour_weight: float = 0.3,
    max_distance: float = 0.5,
) -> Correspondence:
    """Nearest model vertex for every aligned canonical vertex; pairs farther than max_distance, or landing on the
    model's outer border (the canonical point lies beyond the model's face region), are dropped."""
    q = alignment.similarity.apply(np.asarray(canonical, dtype=np.float64))
    x = model.vertices(alignment.identity).astype(np.float64)
    dist, vert = cKDTree(x).query(q)
    keep = dist <= max_distance
    if len(model.faces):
        keep &= ~np.isin(vert, boundary_loops(model.faces)[0])
    mp = np.flatnonzero(keep)
    w = np.ones(len(canonical), dtype=np.float32)
    if contour is not None:
        w[np.asarray(contour)] = contour_weight
    return Correspondence(
        mediapipe_idx=mp.astype(np.int64),
        model_vertex=vert[mp].astype(np.int64),
        weight=w[mp],
        residual=dist[mp].astype(np.float32),
        alignment=alignment,
    )


def build_correspondence(
    model: LinearMorphableModel,
    task_path: str | Path,
    dense: bool = True,
    *,
    max_distance: float = 0.5,
    contour_weight: float = 0.3,
    identity_reg: float = 0.002,
    iterations: int = 10,
    init: Similarity | None = None,
) -> Correspondence:
    """MediaPipe-landmark <-> model-vertex pairs for the fitter (pure: nothing cached; save `to_arrays()`).

    dense=False: the 68 Multi-PIE pairs (jaw weighted by contour_weight). dense=True: one pair per canonical vertex
    that lands within max_distance of a model vertex (a few hundred for ICT); the face-oval points get
    contour_weight because the tracker places them on the silhouette, which slides over the 3D face as it turns.
    Both carry the alignment, whose summary() reports the residuals. init: see align_canonical_to_model (dense
    only, for models without landmarks_68).
    """
    geo = read_canonical_geometry(task_path)
    contour = geo.face_oval
    alignment = align_canonical_to_model(
        model,
        geo.vertices,
        contour=contour,
        contour_weight=contour_weight,
        identity_reg=identity_reg,
        iterations=iterations,
        init=init,
    )
    if dense:
        return dense_pairs(
            model, geo.vertices, alignment, contour=contour, contour_weight=contour_weight, max_distance=max_distance
        )
    w = np.ones(68, dtype=np.float32)
    w[JAW_68] = contour_weight
    if model.landmarks_68 is None:
        raise ValueError(f"{model.name}: sparse correspondence needs landmarks_68")
    return Correspondence(
        mediapipe_idx=np.asarray(MEDIAPIPE_68, dtype=np.int64),
        model_vertex=model.landmarks_68.copy(),
        weight=w,
        residual=alignment.landmark_residual.copy(),
        alignment=alignment,
    )


def save_correspondence(
    corr: Correspondence, out_npz: str | Path, model_path: str | Path, landmarker_path: str | Path
) -> None:
    """Write the pairs atomically as .npz with the sha256 of the model and landmarker files they were built from."""
    with atomic_path(out_npz) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            mediapipe_idx=np.asarray(corr.mediapipe_idx, np.int32),
            model_vertex=np.asarray(corr.model_vertex, np.int32),
            weight=np.asarray(corr.weight, np.float32),
            model_sha256=sha256_file(model_path),
            landmarker_sha256=sha256_file(landmarker_path),
        )


def load_correspondence(path: str | Path, model_path: str | Path | None = None) -> Correspondence:
    """Load pairs saved by `save_correspondence`; refuse them if they were built for a different model file."""
    try:
        with np.load(path) as data:
            corr = Correspondence(
                mediapipe_idx=data["mediapipe_idx"], model_vertex=data["model_vertex"], weight=data["weight"]
            )
            built_for = str(data["model_sha256"])
    except (OSError, KeyError, ValueError) as exc:
        raise PipelineInputError(path, f"unreadable correspondence file ({exc})") from None
    if model_path is not None and sha256_file(model_path) != built_for:
        raise PipelineInputError(path, f"built for another morphable model than {model_path}; rebuild it")
    return corr
