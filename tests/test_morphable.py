"""neural_renderer.morphable: the model container, the loaders and the ICT converter.

The FLAME and BFM tests are FORMAT tests: the licensed files cannot be shipped, so small synthetic files are written
in exactly the published layouts (FLAME pickle with chumpy objects, BFM2017 statismo h5) and read back.
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest

from neural_renderer.errors import PipelineInputError
from neural_renderer.morphable import (
    ICT_LANDMARKS_68,
    LinearMorphableModel,
    convert_ict_objs,
    load_morphable_model,
    protobuf,
    save_morphable_model,
)
from neural_renderer.morphable.ict import region_faces


@pytest.fixture(scope="module")
def ict(ict_model_npz: Path) -> LinearMorphableModel:
    return load_morphable_model(ict_model_npz)


def _tiny_model(rng: np.random.Generator, v: int = 6, ki: int = 3, ke: int = 2) -> LinearMorphableModel:
    return LinearMorphableModel(
        name="tiny",
        neutral=rng.normal(size=(v, 3)),
        faces=np.array([[0, 1, 2], [2, 3, 4], [3, 4, 5]]),
        identity_basis=rng.normal(size=(ki, v, 3)),
        expression_basis=rng.normal(size=(ke, v, 3)),
        identity_names=[f"id{i}" for i in range(ki)],
        expression_names=[f"ex{i}" for i in range(ke)],
        landmarks_68=None,
    )


# ------------------------------------------------------------------------------------------------------ wire format


def test_protobuf_reader_hand_encoded_message():
    key = protobuf.encode_key
    floats = np.array([1.5, -2.25, 3.0], dtype="<f4")
    nested = key(1, protobuf.VARINT) + protobuf.encode_varint(7)
    msg = (
        bytes([0x08, 0x96, 0x01])  # field 1 varint 150 (the protobuf docs' example)
        + bytes([0x12, 0x07])
        + b"testing"  # field 2 string
        + key(3, protobuf.LEN)
        + protobuf.encode_varint(floats.nbytes)
        + floats.tobytes()  # packed floats
        + key(3, protobuf.FIXED32)
        + protobuf.encode_float(4.5)  # one more, unpacked: both forms concatenate
        + bytes([0x22, 0x06, 0x03, 0x8E, 0x02, 0x9E, 0xA7, 0x05])  # field 4 packed varints 3, 270, 86942
        + key(4, protobuf.VARINT)
        + protobuf.encode_varint(2**35)  # and an unpacked one
        + key(5, protobuf.LEN)
        + protobuf.encode_varint(len(nested))
        + nested  # embedded message
        + key(6, protobuf.FIXED64)
        + (1).to_bytes(8, "little")
    )
    f = protobuf.parse_message(msg)
    assert protobuf.single_varint(f, 1) == 150
    assert f[2] == [(protobuf.LEN, b"testing")]
    np.testing.assert_array_equal(protobuf.repeated_floats(f, 3), [1.5, -2.25, 3.0, 4.5])
    np.testing.assert_array_equal(protobuf.repeated_varints(f, 4), [3, 270, 86942, 2**35])
    assert protobuf.single_varint(protobuf.submessages(f, 5)[0], 1) == 7
    assert protobuf.single_varint(f, 99, default=-1) == -1
    assert protobuf.read_varint(protobuf.encode_varint(300), 0) == (300, 2)


@pytest.mark.parametrize("bad", [b"\x08\x96", b"\x12\x07abc", b"\x0b\x00", b"\x00\x01"])
def test_protobuf_reader_rejects_malformed(bad):
    with pytest.raises(ValueError):
        protobuf.parse_message(bad)


# ------------------------------------------------------------------------------------------------------------ model


def test_vertices_is_neutral_plus_weighted_bases(ict):
    rng = np.random.default_rng(0)
    a = rng.normal(size=ict.n_identity)
    b = rng.uniform(0, 1, size=ict.n_expression)
    ref = (
        ict.neutral.astype(np.float64)
        + np.einsum("k,kvd->vd", a, ict.identity_basis.astype(np.float64))
        + np.einsum("k,kvd->vd", b, ict.expression_basis.astype(np.float64))
    )
    got = ict.vertices(a, b)
    assert got.shape == (ict.n_vertices, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-4)
    np.testing.assert_array_equal(ict.vertices(), ict.neutral)
    with pytest.raises(ValueError):
        ict.vertices(np.zeros(3))


def test_ict_npz_contents(ict):
    assert (ict.n_vertices, ict.n_identity, ict.n_expression) == (9409, 100, 57)
    assert ict.faces.shape == (9230, 4) and ict.units == "cm"
    assert ict.expression_names[ict.expression_index("jawOpen")] == "jawOpen"
    np.testing.assert_array_equal(ict.landmarks_68, ICT_LANDMARKS_68)
    with pytest.raises(KeyError, match="jawClose"):
        ict.expression_index("jawClose")
    assert not ict.neutral.flags.writeable and not ict.identity_basis.flags.writeable


def test_subset_matches_full_model(ict):
    rng = np.random.default_rng(1)
    idx = np.concatenate([ict.landmarks_68, rng.choice(ict.n_vertices, 200, replace=False), ict.landmarks_68[:3]])
    sub = ict.subset(idx)
    a = rng.normal(size=ict.n_identity)
    b = rng.uniform(0, 1, size=ict.n_expression)
    np.testing.assert_allclose(sub.vertices(a, b), ict.vertices(a, b)[idx], atol=1e-5)
    np.testing.assert_array_equal(sub.landmarks_68, np.arange(68))  # first occurrences
    assert sub.expression_names == ict.expression_names and sub.n_vertices == len(idx)
    # faces survive only when all corners are in the subset, and are re-indexed onto the same positions
    full_faces = ict.subset(np.arange(ict.n_vertices)[::-1])
    np.testing.assert_array_equal(full_faces.neutral[full_faces.faces], ict.neutral[ict.faces])
    assert ict.subset([0, 1, 2]).landmarks_68 is None


def test_model_validation():
    rng = np.random.default_rng(2)
    good = _tiny_model(rng)
    kw = dict(
        name="bad",
        neutral=good.neutral,
        faces=good.faces,
        identity_basis=good.identity_basis,
        expression_basis=good.expression_basis,
    )
    with pytest.raises(ValueError, match="identity_basis"):
        LinearMorphableModel(**{**kw, "identity_basis": np.zeros((2, 5, 3))})
    with pytest.raises(ValueError, match="non-finite"):
        LinearMorphableModel(**{**kw, "neutral": np.full((6, 3), np.nan)})
    with pytest.raises(ValueError, match="face indices"):
        LinearMorphableModel(**{**kw, "faces": np.array([[0, 1, 6]])})
    with pytest.raises(ValueError, match="landmarks_68"):
        LinearMorphableModel(**kw, landmarks_68=np.arange(67))
    with pytest.raises(ValueError, match="expression names"):
        LinearMorphableModel(**kw, expression_names=["a"])
    m = LinearMorphableModel(**kw)
    assert m.identity_names == ["identity000", "identity001", "identity002"]


def test_as_torch(ict):
    import torch

    neutral, ident, expr = ict.subset(np.arange(10)).as_torch("cpu", torch.float64)
    assert neutral.shape == (10, 3) and ident.shape == (100, 10, 3) and expr.shape == (57, 10, 3)
    assert neutral.dtype == torch.float64
    np.testing.assert_allclose(neutral.numpy(), ict.neutral[:10])


def test_save_load_roundtrip(tmp_path):
    m = _tiny_model(np.random.default_rng(3))
    out = save_morphable_model(m, tmp_path / "sub" / "tiny.npz")
    back = load_morphable_model(out)
    assert back.name == "tiny" and back.landmarks_68 is None and back.expression_names == m.expression_names
    np.testing.assert_array_equal(back.identity_basis, m.identity_basis)
    assert not list(out.parent.glob(".*tmp"))


def test_loader_errors(tmp_path):
    with pytest.raises(PipelineInputError, match="not found"):
        load_morphable_model(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", foo=np.zeros(3))
    with pytest.raises(PipelineInputError, match="neither"):
        load_morphable_model(tmp_path / "other.npz")
    (tmp_path / "m.xyz").write_text("x")
    with pytest.raises(PipelineInputError, match="suffix"):
        load_morphable_model(tmp_path / "m.xyz")


# ------------------------------------------------------------------------------------------------- ICT converter


def test_convert_ict_raw_matches_shared_npz(tmp_path, shared_dir, ict):
    """Independent reference: the shared npz was converted separately from the same upstream OBJs."""
    model = convert_ict_objs(shared_dir / "models" / "ict_raw", tmp_path / "ict.npz")
    assert model.expression_names == ["jawOpen"] and model.n_identity == 0
    np.testing.assert_allclose(model.neutral, ict.neutral, atol=1e-6)
    np.testing.assert_allclose(
        model.expression_basis[0], ict.expression_basis[ict.expression_index("jawOpen")], atol=1e-5
    )
    np.testing.assert_array_equal(model.faces, ict.faces)
    np.testing.assert_array_equal(model.landmarks_68, ict.landmarks_68)
    back = load_morphable_model(tmp_path / "ict.npz")
    np.testing.assert_array_equal(back.expression_basis, model.expression_basis)


def _write_obj(path: Path, verts: np.ndarray, faces: list[list[int]]) -> None:
    lines = ["# test", "mtllib x.mtl"] + [f"v {x} {y} {z}" for x, y, z in verts]
    lines += ["vt 0 0"] + ["f " + " ".join(f"{i + 1}/1" for i in f) for f in faces]
    path.write_text("\n".join(lines) + "\n")


def test_convert_groups_identity_and_expression_files(tmp_path):
    rng = np.random.default_rng(4)
    base = rng.normal(size=(8, 3))
    faces = [[0, 1, 2, 3], [2, 3, 4], [4, 5, 6, 7]]  # the last one leaves the 6-vertex region
    src = tmp_path / "FaceXModel"
    src.mkdir()
    _write_obj(src / "generic_neutral_mesh.obj", base, faces)
    shapes = {name: rng.normal(size=(8, 3)) for name in ["identity001", "identity000", "mouthSmile_L", "browDown_R"]}
    for name, verts in shapes.items():
        _write_obj(src / f"{name}.obj", verts, faces)
    m = convert_ict_objs(src, tmp_path / "out.npz", face_vertex_count=6, landmarks_68=np.zeros(68, int))
    assert m.identity_names == ["identity000", "identity001"]
    assert m.expression_names == ["browDown_R", "mouthSmile_L"]
    np.testing.assert_allclose(m.identity_basis[1], shapes["identity001"][:6] - base[:6], atol=1e-6)
    np.testing.assert_array_equal(m.faces, [[0, 1, 2], [0, 2, 3], [2, 3, 4]])  # mixed: fan-triangulated
    only = convert_ict_objs(
        src,
        tmp_path / "o2.npz",
        identity_names=[],
        expression_names=["mouthSmile_L"],
        face_vertex_count=6,
        landmarks_68=np.zeros(68, int),
    )
    assert only.n_identity == 0 and only.expression_names == ["mouthSmile_L"]
    with pytest.raises(PipelineInputError, match="missing"):
        convert_ict_objs(
            src, tmp_path / "o3.npz", expression_names=["jawOpen"], face_vertex_count=6, landmarks_68=np.zeros(68, int)
        )
    with pytest.raises(PipelineInputError, match="outside the kept"):
        convert_ict_objs(src, tmp_path / "o4.npz", face_vertex_count=6)  # ICT landmarks need 9409 vertices


def test_region_faces_keeps_uniform_polygons():
    assert region_faces([[0, 1, 2, 3], [1, 2, 3, 4]], 5).shape == (2, 4)
    assert region_faces([[0, 1, 2], [5, 6, 7]], 5).tolist() == [[0, 1, 2]]


# ------------------------------------------------------------------------------------ FLAME / BFM format tests


def _fake_chumpy() -> tuple[types.ModuleType, types.ModuleType]:
    """A stand-in 'chumpy.ch.Ch' whose pickled state is chumpy's ({'x': array, ...} without caches)."""
    pkg = types.ModuleType("chumpy")
    mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self.dterms = ("x",)
            self._cache = {}

        def __getstate__(self):
            return {"x": self.x, "dterms": self.dterms}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch = Ch
    pkg.ch = mod
    return pkg, mod


def _flame_pickle(path: Path, v_template, shapedirs, faces) -> None:
    import scipy.sparse

    pkg, mod = _fake_chumpy()
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = pkg, mod
    try:
        data = {
            "v_template": v_template,  # FLAME2020 stores this one as a plain ndarray ...
            "shapedirs": mod.Ch(shapedirs),  # ... and the blendshapes as chumpy
            "posedirs": mod.Ch(np.zeros((len(v_template), 3, 36))),
            "f": faces.astype(np.uint32),
            "J_regressor": scipy.sparse.csc_matrix(np.eye(5, len(v_template))),
            "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
            "weights": np.full((len(v_template), 5), 0.2),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
        }
        raw = pickle.dumps(data, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    # like the official file, written by numpy 1.x: arrays reference numpy.core, which numpy 2 renamed
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


def test_flame_pickle_format(tmp_path):
    rng = np.random.default_rng(5)
    v = 40
    v_template = rng.normal(scale=0.1, size=(v, 3))  # metres
    shapedirs = rng.normal(scale=1e-3, size=(v, 3, 7 + 100))  # 7 shape + 100 expression columns
    faces = rng.integers(0, v, size=(20, 3))
    p = tmp_path / "generic_model.pkl"
    _flame_pickle(p, v_template, shapedirs, faces)
    assert b"chumpy.ch" in p.read_bytes() and "chumpy" not in sys.modules
    lm = tmp_path / "lmk68.npy"
    np.save(lm, np.arange(68) % v)
    m = load_morphable_model(p, landmarks_68=lm)
    assert (m.n_identity, m.n_expression, m.units) == (7, 100, "cm")
    assert m.expression_names[0] == "flame_exp_000" and m.expression_names[-1] == "flame_exp_099"
    np.testing.assert_allclose(m.neutral, v_template * 100, rtol=1e-6)
    np.testing.assert_allclose(m.identity_basis[3], shapedirs[:, :, 3] * 100, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.expression_basis[99], shapedirs[:, :, 106] * 100, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(m.faces, faces)
    np.testing.assert_array_equal(m.landmarks_68, np.arange(68) % v)
    # the npz variant with the same keys
    np.savez(tmp_path / "flame.npz", v_template=v_template, shapedirs=shapedirs, f=faces)
    m2 = load_morphable_model(tmp_path / "flame.npz")
    np.testing.assert_allclose(m2.vertices(np.ones(7), np.ones(100)), m.vertices(np.ones(7), np.ones(100)), atol=1e-5)
    assert m2.landmarks_68 is None


def test_flame_unpickler_refuses_code(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(PipelineInputError, match="refusing"):
        load_morphable_model(p)


def test_bfm2017_h5_format(tmp_path):
    rng = np.random.default_rng(6)
    n, ks, ke = 30, 5, 4
    shape_mean = rng.normal(scale=50, size=3 * n)  # mm
    exp_mean = rng.normal(scale=1, size=3 * n)
    shape_u = np.linalg.qr(rng.normal(size=(3 * n, ks)))[0]  # statismo stores orthonormal columns
    exp_u = np.linalg.qr(rng.normal(size=(3 * n, ke)))[0]
    shape_var = np.array([900.0, 400, 100, 25, 4])
    exp_var = np.array([50.0, 20, 5, 1])
    cells = rng.integers(0, n, size=(3, 12))
    p = tmp_path / "model2017-1_face12_nomouth.h5"
    with h5py.File(p, "w") as h5:
        h5["shape/model/mean"] = shape_mean.astype(np.float32)
        h5["shape/model/pcaBasis"] = shape_u.astype(np.float32)
        h5["shape/model/pcaVariance"] = shape_var.astype(np.float32)
        h5["shape/model/noiseVariance"] = np.float32(0)
        h5["shape/representer/cells"] = cells.astype(np.uint32)
        h5["shape/representer/points"] = shape_mean.reshape(n, 3).T.astype(np.float32)
        h5["expression/model/mean"] = exp_mean.astype(np.float32)
        h5["expression/model/pcaBasis"] = exp_u.astype(np.float32)
        h5["expression/model/pcaVariance"] = exp_var.astype(np.float32)
        h5["color/model/mean"] = np.zeros(3 * n, np.float32)
    m = load_morphable_model(p)
    assert (m.n_vertices, m.n_identity, m.n_expression, m.units) == (n, ks, ke, "cm")
    np.testing.assert_allclose(m.neutral, ((shape_mean + exp_mean) * 0.1).reshape(n, 3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.identity_basis[0], (shape_u[:, 0] * 30 * 0.1).reshape(n, 3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.expression_basis[2], (exp_u[:, 2] * np.sqrt(5) * 0.1).reshape(n, 3), atol=1e-6)
    np.testing.assert_array_equal(m.faces, cells.T)
    assert m.landmarks_68 is None
    with h5py.File(p, "a") as h5:
        del h5["shape/model/pcaVariance"]
    with pytest.raises(PipelineInputError, match="pcaVariance"):
        load_morphable_model(p)
