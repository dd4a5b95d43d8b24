"""MediaPipe canonical mesh parsing, MEDIAPIPE_68 and the MediaPipe <-> ICT correspondence (geometric checks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from neural_renderer.errors import PipelineInputError
from neural_renderer.morphable import (
    MEDIAPIPE_68,
    MULTIPIE_68_MIRROR,
    Correspondence,
    LinearMorphableModel,
    align_canonical_to_model,
    build_correspondence,
    load_mediapipe_canonical_mesh,
    load_morphable_model,
    parse_geometry_metadata,
    protobuf,
    read_canonical_geometry,
)
from neural_renderer.morphable.geometry import Similarity, boundary_loops, closest_points_on_mesh, umeyama

# MediaPipe's FACE_OVAL (face_mesh_connections.py), the silhouette ring of the 468-point mesh.
FACE_OVAL = {
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
}


@pytest.fixture(scope="module")
def ict(ict_model_npz: Path) -> LinearMorphableModel:
    return load_morphable_model(ict_model_npz)


@pytest.fixture(scope="module")
def canonical(landmarker_model: Path):
    return read_canonical_geometry(landmarker_model)


@pytest.fixture(scope="module")
def dense(ict, landmarker_model) -> Correspondence:
    return build_correspondence(ict, landmarker_model, dense=True)


def test_canonical_mesh(landmarker_model, canonical):
    verts, tris = load_mediapipe_canonical_mesh(landmarker_model)
    assert verts.shape == (468, 3) and verts.dtype == np.float32 and np.isfinite(verts).all()
    assert tris.shape == (898, 3) and tris.min() == 0 and tris.max() == 467
    assert len(np.unique(tris)) == 468  # every vertex is used
    assert (np.ptp(verts, axis=0) > 5).all() and (np.ptp(verts, axis=0) < 25).all()  # a face, in cm
    assert verts[4, 2] > verts[234, 2]  # nose tip in front of the cheek contour (+z towards the viewer)
    assert np.all((canonical.uv >= 0) & (canonical.uv <= 1))
    assert len(canonical.procrustes_ids) == len(canonical.procrustes_weights) > 0
    assert canonical.procrustes_ids.max() < 468 and (canonical.procrustes_weights > 0).all()
    assert set(canonical.face_oval.tolist()) == FACE_OVAL  # the mesh's only boundary is the face oval
    assert len(boundary_loops(tris)) == 1


def test_parse_tiny_hand_encoded_metadata():
    key, varint = protobuf.encode_key, protobuf.encode_varint
    vb = np.arange(15, dtype="<f4") / 10  # 3 VERTEX_PT vertices
    mesh = (
        key(1, protobuf.VARINT)
        + varint(0)
        + key(2, protobuf.VARINT)
        + varint(0)
        + key(3, protobuf.LEN)
        + varint(vb.nbytes)
        + vb.tobytes()
        + b"".join(key(4, protobuf.VARINT) + varint(i) for i in (0, 1, 2))
    )
    ref = key(1, protobuf.VARINT) + varint(2) + key(2, protobuf.FIXED32) + protobuf.encode_float(0.5)
    meta = (
        key(1, protobuf.LEN)
        + varint(len(mesh))
        + mesh
        + key(2, protobuf.LEN)
        + varint(len(ref))
        + ref
        + key(3, protobuf.VARINT)
        + varint(1)
    )
    geo = parse_geometry_metadata(meta)
    np.testing.assert_allclose(geo.vertices, vb.reshape(3, 5)[:, :3])
    np.testing.assert_allclose(geo.uv, vb.reshape(3, 5)[:, 3:])
    assert geo.triangles.tolist() == [[0, 1, 2]] and geo.procrustes_ids.tolist() == [2]
    assert geo.procrustes_weights.tolist() == [0.5] and geo.input_source == 1


def test_bad_task_bundle(tmp_path):
    p = tmp_path / "x.task"
    p.write_bytes(b"not a zip")
    with pytest.raises(PipelineInputError, match="x.task"):
        read_canonical_geometry(p)


def test_mediapipe_68_is_mirror_symmetric(canonical):
    """Point i's mirror image must be the mirror point's index: catches left/right and off-by-one slips."""
    v = canonical.vertices
    dist, mirror = cKDTree(v).query(v * [-1, 1, 1])
    assert dist.max() < 1e-4  # the canonical mesh is exactly symmetric
    mp = np.asarray(MEDIAPIPE_68)
    assert len(mp) == 68 and len(set(MEDIAPIPE_68)) == 68
    np.testing.assert_array_equal(mirror[mp], mp[list(MULTIPIE_68_MIRROR)])
    assert (v[mp[:8], 0] < 0).all()  # Multi-PIE starts on the subject's right (x < 0 in both templates)


def test_mediapipe_68_matches_ict_landmarks(ict, canonical):
    """Geometric check of MEDIAPIPE_68 that does not use it beyond the initial guess: after a purely geometric
    fit (similarity + identity ICP, landmark term off), each MediaPipe point must sit on ICT's landmark."""
    al = align_canonical_to_model(ict, canonical.vertices, contour=canonical.face_oval, landmark_weight=0.0)
    r = al.landmark_residual
    assert r[27:].max() < 0.5  # nose, eyes, mouth: cm
    assert r[17:27].max() < 0.65  # brows (a band, not a line)
    assert r[:17].max() < 2.0  # jaw: a view-dependent contour vs a fixed vertex ring
    assert r.mean() < 0.5
    # the initial 68-point similarity alone already agrees to about a centimetre
    mp = np.asarray(MEDIAPIPE_68)
    w = np.ones(68)
    w[:17] = 0.3
    sim = umeyama(canonical.vertices[mp], ict.neutral[ict.landmarks_68], w)
    r0 = np.linalg.norm(sim.apply(canonical.vertices[mp]) - ict.neutral[ict.landmarks_68], axis=1)
    assert r0[17:].mean() < 0.4 and r0.max() < 2.0


def test_dense_correspondence(ict, dense, canonical):
    n = len(dense)
    assert n > 300
    assert dense.mediapipe_idx.min() >= 0 and dense.mediapipe_idx.max() < 468
    assert len(np.unique(dense.mediapipe_idx)) == n
    assert dense.model_vertex.min() >= 0 and dense.model_vertex.max() < ict.n_vertices
    assert len(np.unique(dense.model_vertex)) > 0.95 * n
    # the stored residuals are the real distances (recomputed here from the alignment), each pair is the nearest model
    # vertex, and few canonical points were dropped (dense_pairs drops pairs beyond 0.5 cm: a max bound cannot fail)
    al = dense.alignment
    q = al.similarity.apply(np.asarray(canonical.vertices, dtype=np.float64))[dense.mediapipe_idx]
    x = ict.vertices(al.identity).astype(np.float64)
    np.testing.assert_allclose(dense.residual, np.linalg.norm(q - x[dense.model_vertex], axis=1), atol=1e-4)
    np.testing.assert_allclose(dense.residual, cKDTree(x).query(q)[0], atol=1e-4)
    assert n > 0.8 * len(canonical.vertices) and dense.residual.mean() < 0.2 and np.median(dense.residual) < 0.15
    oval = np.isin(dense.mediapipe_idx, list(FACE_OVAL))
    assert oval.any() and dense.weight[oval].max() < dense.weight[~oval].min()
    summary = dense.alignment.summary()
    assert 0.8 < summary["scale"] < 1.2 and summary["surface_residual_median"] < 0.15
    assert summary["landmark_inner_residual_max"] < 0.6


def test_dense_pairs_keep_lips_apart(ict, dense):
    """The mouth is closed in both templates; an upper-lip MediaPipe point matched to a lower-lip vertex would break
    every open-mouth frame. ICT's jawOpen shape tells the lips apart: the lower lip moves, the upper barely."""
    jaw_dy = ict.expression_basis[ict.expression_index("jawOpen")][:, 1]
    vert = dict(zip(dense.mediapipe_idx.tolist(), dense.model_vertex.tolist()))
    upper = [185, 40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415]
    lower = [146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324]
    assert max(-jaw_dy[vert[i]] for i in upper) < 1.0 < min(-jaw_dy[vert[i]] for i in lower)


def test_sparse_correspondence(ict, landmarker_model):
    c = build_correspondence(ict, landmarker_model, dense=False)
    assert len(c) == 68
    np.testing.assert_array_equal(c.mediapipe_idx, MEDIAPIPE_68)
    np.testing.assert_array_equal(c.model_vertex, ict.landmarks_68)
    assert (c.weight[:17] < 1).all() and (c.weight[17:] == 1).all()
    back = Correspondence.from_arrays(c.to_arrays())
    np.testing.assert_array_equal(back.model_vertex, c.model_vertex)
    np.testing.assert_array_equal(back.residual, c.residual)
    bare = Correspondence(mediapipe_idx=c.mediapipe_idx, model_vertex=c.model_vertex, weight=c.weight)
    assert bare.residual.shape == (68,) and np.isnan(bare.residual).all()
    with pytest.raises(ValueError, match="weight"):
        Correspondence(mediapipe_idx=[1, 2], model_vertex=[3, 4], weight=[1.0])
    sub = ict.subset(c.model_vertex)  # what the fitter does
    assert sub.n_vertices == 68


def test_correspondence_without_landmarks(ict, landmarker_model, dense):
    bare = LinearMorphableModel(
        name="bare",
        neutral=ict.neutral,
        faces=ict.faces,
        identity_basis=ict.identity_basis[:2],
        expression_basis=ict.expression_basis[:1],
        landmarks_68=None,
    )
    with pytest.raises(ValueError, match="landmarks_68"):
        build_correspondence(bare, landmarker_model)
    with pytest.raises(ValueError, match="landmarks_68"):
        build_correspondence(bare, landmarker_model, dense=False, init=dense.alignment.similarity)
    # a model without a landmark embedding still gets dense pairs from a rough initial pose (3 %, 4 mm off); pure
    # ICP slides a little, so the pairs land within a few mm of the landmark-initialised ones
    sim = dense.alignment.similarity
    rough = Similarity(scale=sim.scale * 1.03, rotation=sim.rotation, translation=sim.translation + [0.3, -0.3, 0])
    c = build_correspondence(bare, landmarker_model, init=rough)
    assert len(c) > 300 and c.residual.mean() < 0.25 and c.alignment.landmark_residual.size == 0
    ref = dict(zip(dense.mediapipe_idx.tolist(), dense.model_vertex.tolist()))
    shift = np.linalg.norm(ict.neutral[c.model_vertex] - ict.neutral[[ref[i] for i in c.mediapipe_idx]], axis=1)
    assert shift.mean() < 0.35


def test_closest_points_on_mesh():
    rng = np.random.default_rng(0)
    g = np.stack(np.meshgrid(np.arange(5.0), np.arange(5.0), indexing="ij"), -1).reshape(-1, 2)
    verts = np.c_[g, np.zeros(len(g))]
    quads = np.array([[i * 5 + j, i * 5 + j + 5, i * 5 + j + 6, i * 5 + j + 1] for i in range(4) for j in range(4)])
    tris = np.concatenate([quads[:, :3], quads[:, [0, 2, 3]]])
    q = np.c_[rng.uniform(0.2, 3.8, size=(50, 2)), rng.normal(size=50)]
    sp = closest_points_on_mesh(q, verts, tris)
    np.testing.assert_allclose(sp.point, np.c_[q[:, :2], np.zeros(50)], atol=1e-9)
    np.testing.assert_allclose(sp.distance, np.abs(q[:, 2]), atol=1e-9)
