"""Gaze from synthetic geometry: eyes at known poses and gaze directions, irises projected, gaze recovered."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from stage_files import write_crop, write_fit, write_track

from neural_renderer.errors import PipelineInputError
from neural_renderer.fitting.camera import FLIP_YZ, default_intrinsics, project_points_np
from neural_renderer.fitting.config import GazeConfig
from neural_renderer.fitting.gaze import (
    IRIS_CENTERS,
    blink_scores,
    estimate_gaze,
    eye_corner_vertices,
    eyeball_centers_model,
    eyeball_model,
    gaze_from_fit,
    order_iris_points,
    pitch_yaw_from_vectors,
    ray_sphere_intersection,
    vectors_from_pitch_yaw,
)
from neural_renderer.morphable import convert_ict_objs, eyeballs_from_corners, load_morphable_model
from neural_renderer.morphable.eyes import (
    ICT_CORNER_OFFSET_CM,
    ICT_EYEBALL_RADIUS_CM,
    ICT_EYEBALL_RANGES,
    ICT_SCLERA_VERTICES,
    Eyeballs,
)

INTR = default_intrinsics(512)
RADIUS = 1.2
CENTRES = np.array([[-3.2, 3.3, 7.7], [3.2, 3.3, 7.7]])  # model coords (subject's right, left), like ICT


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = np.clip((a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1), -1, 1)
    return np.degrees(np.arccos(cos))


def _scene(head_euler_deg: np.ndarray, gaze_py_deg: np.ndarray, depth: float = 60.0):
    """Head poses (T, 3) euler xyz in the model frame and per-eye camera gaze (T, 2, 2): projected irises etc."""
    r_head = Rotation.from_euler("xyz", head_euler_deg, degrees=True).as_matrix()
    rot = FLIP_YZ[None] @ r_head
    t = np.tile([0.5, -1.0, depth], (len(rot), 1))
    centres_cam = np.einsum("tij,ej->tei", rot, CENTRES) + t[:, None]
    g = vectors_from_pitch_yaw(gaze_py_deg)
    iris3d = centres_cam + RADIUS * g
    iris2d = project_points_np(iris3d, INTR)
    return iris2d, rot, t, g


def test_pitch_yaw_convention():
    # into the camera, up (-y), towards the image's left (-x)
    np.testing.assert_allclose(pitch_yaw_from_vectors(np.array([0.0, 0.0, -1.0])), [0, 0], atol=1e-12)
    assert pitch_yaw_from_vectors(np.array([0.0, -0.5, -1.0]))[0] > 0
    assert pitch_yaw_from_vectors(np.array([-0.5, 0.0, -1.0]))[1] > 0
    py = np.random.default_rng(0).uniform(-60, 60, size=(100, 2))
    np.testing.assert_allclose(pitch_yaw_from_vectors(vectors_from_pitch_yaw(py)), py, atol=1e-9)


def test_recovers_known_gaze_random_poses():
    rng = np.random.default_rng(42)
    n = 200
    head = np.stack([rng.uniform(-20, 20, n), rng.uniform(-35, 35, n), rng.uniform(-15, 15, n)], axis=1)
    rel = rng.uniform(-25, 25, size=(n, 2))  # gaze in the head frame (camera-style axes)
    g_head = vectors_from_pitch_yaw(rel)
    r_head = Rotation.from_euler("xyz", head, degrees=True).as_matrix()
    # head-relative (camera-style) -> model -> camera: g_cam = R FLIP g_head_cam
    g_cam = np.einsum("tij,tj->ti", FLIP_YZ[None] @ r_head, g_head @ FLIP_YZ.T)
    py_cam = pitch_yaw_from_vectors(np.repeat(g_cam[:, None], 2, axis=1))
    iris2d, rot, t, g = _scene(head, py_cam)
    res = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS)
    assert res.hit.all() and res.valid.all()
    assert _angle_deg(res.eye_vectors, g).max() < 0.5
    np.testing.assert_allclose(np.linalg.norm(res.eye_vectors, axis=-1), 1.0, atol=1e-9)
    assert np.abs(res.eye_pitch_yaw_deg - py_cam).max() < 0.5
    # both eyes parallel: combined = each; relative to the head: the gaze we put in
    assert _angle_deg(res.vector, g_cam).max() < 0.5
    assert np.abs(res.head_pitch_yaw_deg - rel).max() < 0.5
    np.testing.assert_allclose(res.head_vector, np.einsum("tji,tj->ti", rot, res.vector), atol=1e-12)


def test_looking_into_the_camera_from_the_optical_axis_is_zero():
    # an eyeball centred on the optical axis whose iris projects to the principal point looks straight at the camera
    rot = np.eye(3)[None]
    t = np.array([[0.0, 0.0, 50.0]])
    centre = np.zeros((2, 3))
    iris2d = np.tile(INTR[2:], (1, 2, 1))
    res = estimate_gaze(iris2d, centre, rot, t, INTR, RADIUS)
    np.testing.assert_allclose(res.eye_pitch_yaw_deg, 0.0, atol=1e-9)
    np.testing.assert_allclose(res.vector[0], [0, 0, -1], atol=1e-12)


def test_symmetric_eyes_give_mirrored_yaw_and_equal_pitch():
    # frontal head, both eyes fixating the camera centre: yaws mirror each other, pitches agree
    rot = FLIP_YZ[None]
    t = np.array([[0.0, 3.3, 60.0]])  # eye centres at camera y = 0 (camera y = -model y + t_y)
    centres_cam = np.einsum("ij,ej->ei", rot[0], CENTRES) + t[0]
    g = -centres_cam / np.linalg.norm(centres_cam, axis=1, keepdims=True)
    iris2d = project_points_np(centres_cam + RADIUS * g, INTR)[None]
    res = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS)
    py = res.eye_pitch_yaw_deg[0]
    assert abs(py[0, 1] + py[1, 1]) < 1e-6 and abs(py[0, 1]) > 1.0  # mirrored (converging) yaw
    np.testing.assert_allclose(py[:, 0], 0.0, atol=1e-9)  # at the camera's height: no pitch
    # the subject's right eye (image left, x < 0) turns towards +x to see the camera: negative yaw
    assert py[0, 1] < 0 < py[1, 1]
    np.testing.assert_allclose(res.pitch_yaw_deg[0], [0.0, 0.0], atol=1e-6)


def test_ray_missing_the_sphere_uses_the_closest_point():
    centre = np.array([[0.0, 0.0, 50.0]])
    d = np.array([[0.2, 0.0, 1.0]])
    d /= np.linalg.norm(d)
    pts, hit = ray_sphere_intersection(d, centre, RADIUS)
    assert not hit[0]
    np.testing.assert_allclose(np.linalg.norm(pts[0] - centre[0]), RADIUS, atol=1e-12)
    # the point lies in the plane of ray and centre, on the ray's side, and no sphere point is closer to the ray
    closest_on_ray = (d[0] @ centre[0]) * d[0]
    expected = centre[0] + RADIUS * (closest_on_ray - centre[0]) / np.linalg.norm(closest_on_ray - centre[0])
    np.testing.assert_allclose(pts[0], expected, atol=1e-12)
    # a hit returns the nearer intersection
    pts, hit = ray_sphere_intersection(np.array([[0.0, 0.0, 1.0]]), centre, RADIUS)
    assert hit[0]
    np.testing.assert_allclose(pts[0], [0, 0, 50 - RADIUS], atol=1e-12)


def test_miss_case_in_estimate_gaze_is_finite_and_flagged():
    iris2d, rot, t, g = _scene(np.zeros((1, 3)), np.zeros((1, 2, 2)))
    iris2d = iris2d.copy()
    iris2d[0, 0, 0] += 80.0  # far outside the right eyeball's projection
    res = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS)
    assert not res.hit[0, 0] and res.hit[0, 1]
    assert np.isfinite(res.eye_vectors).all()
    # the closest sphere point lies sideways: the gaze turns towards the iris side (+x in the image) by ~90 degrees
    assert res.eye_vectors[0, 0, 0] > 0.9


def test_invalid_frames_are_interpolated_or_nan():
    py = np.zeros((5, 2, 2))
    py[:, :, 1] = np.linspace(-20, 20, 5)[:, None]
    iris2d, rot, t, g = _scene(np.zeros((5, 3)), py)
    iris2d[2] = np.nan
    res = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS)
    assert not res.valid[2] and res.valid[[0, 1, 3, 4]].all()
    assert abs(res.eye_pitch_yaw_deg[2, 0, 1]) < 1.0  # halfway between -10 and +10
    res = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS, interpolate=False)
    assert np.isnan(res.eye_vectors[2]).all()
    arrays = res.to_arrays()
    assert set(arrays) == {
        "eye_vectors",
        "vector",
        "eye_pitch_yaw_deg",
        "pitch_yaw_deg",
        "head_vector",
        "head_pitch_yaw_deg",
        "valid",
        "eyes_closed",
        "blink_score",
    }
    assert arrays["eye_vectors"].shape == (5, 2, 3) and arrays["head_pitch_yaw_deg"].shape == (5, 2)


def test_order_iris_points_by_geometry():
    ec = np.array([[[100.0, 200.0], [300.0, 200.0]]]).repeat(3, axis=0)
    iris = np.array([[[105.0, 202.0], [296.0, 199.0]]]).repeat(3, axis=0)
    iris[1] = iris[1, ::-1]
    out = order_iris_points(iris, ec)
    np.testing.assert_allclose(out, np.array([[[105.0, 202.0], [296.0, 199.0]]]).repeat(3, axis=0))


@dataclass
class _Model:
    neutral: np.ndarray
    identity_basis: np.ndarray
    landmarks_68: np.ndarray
    units: str = "cm"
    name: str = "toy"


def test_eyeball_centres_from_model_corners_and_gaze_from_fit():
    rng = np.random.default_rng(3)
    neutral = rng.normal(size=(80, 3))
    lm = np.arange(68)
    # Multi-PIE 36/39 on the subject's right (x < 0), 42/45 on the left, all at z = 9
    neutral[36], neutral[39] = [-4.5, 3.4, 9.0], [-1.9, 3.2, 9.0]
    neutral[42], neutral[45] = [1.9, 3.2, 9.0], [4.5, 3.4, 9.0]
    basis = np.zeros((2, 80, 3))
    basis[0, :, 0] = 0.1 * np.sign(neutral[:, 0])  # identity 0 widens the face
    model = _Model(neutral, basis, lm)
    np.testing.assert_array_equal(eye_corner_vertices(model), [[36, 39], [42, 45]])
    # no eyeball data: the fallback, ICT's offset (towards the nose, up, back) from the corner midpoint
    c = eyeball_centers_model(model, np.array([1.0, 0.0]))
    dx, dy, dz = ICT_CORNER_OFFSET_CM
    np.testing.assert_allclose(c, [[-3.3 + dx, 3.3 + dy, 9 + dz], [3.3 - dx, 3.3 + dy, 9 + dz]], atol=1e-12)
    assert eyeball_model(model).radius == pytest.approx(ICT_EYEBALL_RADIUS_CM)
    with pytest.raises(PipelineInputError, match="no eyeball data"):
        eyeball_model(model, "model")
    # mirrored model (x flipped): the rows still come out (subject's right, left)
    flipped = _Model(neutral * [-1, 1, 1], basis, lm)
    np.testing.assert_allclose(eyeball_centers_model(flipped, None)[:, 0], [-3.2 + dx, 3.2 - dx])

    @dataclass
    class _Fit:
        identity: np.ndarray
        rotation: np.ndarray
        translation: np.ndarray
        intrinsics: np.ndarray

    head = np.array([[5.0, -20.0, 3.0], [-5.0, 10.0, 0.0]])
    rot = FLIP_YZ[None] @ Rotation.from_euler("xyz", head, degrees=True).as_matrix()
    t = np.array([[0.0, 0.0, 55.0], [1.0, 0.5, 60.0]])
    centres_cam = np.einsum("tij,ej->tei", rot, c) + t[:, None]
    py = np.array([[[10.0, -5.0], [8.0, 3.0]], [[-12.0, 20.0], [-10.0, 25.0]]])
    iris2d = project_points_np(centres_cam + 1.2 * vectors_from_pitch_yaw(py), INTR)
    landmarks = np.full((2, 478, 3), 256.0)
    landmarks[:, IRIS_CENTERS[0], :2] = iris2d[:, 1]  # deliberately swapped: assignment is by geometry
    landmarks[:, IRIS_CENTERS[1], :2] = iris2d[:, 0]
    cfg = GazeConfig(eyeball_radius_cm=1.2)
    res = gaze_from_fit(landmarks, _Fit(np.array([1.0, 0.0]), rot, t, INTR), model, cfg)
    assert np.abs(res.eye_pitch_yaw_deg - py).max() < 0.5
    # the fit stage's arrays (a mapping, as read back from fit.h5) work the same
    arrays = {"identity": np.array([1.0, 0.0]), "rotation": rot, "translation": t, "intrinsics": INTR}
    np.testing.assert_allclose(gaze_from_fit(landmarks, arrays, model, cfg).eye_vectors, res.eye_vectors)


# ------------------------------------------------------------------------------- eyeballs of the real ICT mesh


@pytest.fixture(scope="module")
def ict_with_eyes(tmp_path_factory, shared_dir):
    """The converter run on the upstream OBJs (full mesh with eyeballs) and the shared face-region npz (none)."""
    path = tmp_path_factory.mktemp("ict") / "ict.npz"
    convert_ict_objs(shared_dir / "models" / "ict_raw", path)
    return load_morphable_model(path), load_morphable_model(shared_dir / "models" / "ict_face_light_face.npz")


def test_ict_eyeballs_are_sclera_spheres_and_the_fallback_matches_them(ict_with_eyes, shared_dir):
    full, face_only = ict_with_eyes
    eyes = full.eyeballs
    assert eyes is not None and face_only.eyeballs is None
    # mirror-symmetric, subject's right first, behind and above the eye-corner line, radius of a (large) eyeball
    np.testing.assert_allclose(eyes.centers[0] * [-1, 1, 1], eyes.centers[1], atol=1e-4)
    assert eyes.centers[0, 0] < 0 and 1.3 < eyes.radius < 1.8
    corners = full.neutral[eye_corner_vertices(full)].mean(axis=1)
    assert (eyes.centers[:, 1] > corners[:, 1] + 0.2).all() and (eyes.centers[:, 2] < corners[:, 2] - 0.5).all()
    # the sclera really is close to that sphere
    from neural_renderer.morphable.ict import read_obj

    verts, _ = read_obj(shared_dir / "models" / "ict_raw" / "generic_neutral_mesh.obj.gz")
    for (start, _), c in zip(ICT_EYEBALL_RANGES[::-1], eyes.centers):  # upstream order: left eye first
        d = np.linalg.norm(verts[start : start + ICT_SCLERA_VERTICES] - c, axis=1)
        assert np.abs(d - eyes.radius).mean() < 0.06
    # the documented fallback constants reproduce the model's eyeballs on ICT's own mean face
    np.testing.assert_allclose(eyeballs_from_corners(face_only).centers, eyes.centers, atol=1e-3)
    assert eyeballs_from_corners(face_only).radius == pytest.approx(eyes.radius, abs=1e-3)
    assert eyeball_model(full, "auto") is eyes and eyeball_model(face_only, "auto").radius == ICT_EYEBALL_RADIUS_CM


def test_gaze_at_the_camera_with_the_ict_eyeballs(ict_with_eyes):
    """Eyes of the ICT head turned to the camera (iris = where the eye's axis leaves the sclera sphere): gaze from the
    model's eyeballs and from the fallback both point at the camera within 3 degrees, for frontal and turned heads."""
    full, face_only = ict_with_eyes
    eyes = full.eyeballs
    head = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [-8.0, 20.0, 4.0], [5.0, -30.0, -6.0]])
    rot = FLIP_YZ[None] @ Rotation.from_euler("xyz", head, degrees=True).as_matrix()
    t = np.tile([0.0, -3.5, 50.0], (len(head), 1))
    centres_cam = np.einsum("tij,ej->tei", rot, eyes.centers) + t[:, None]
    to_cam = -centres_cam / np.linalg.norm(centres_cam, axis=-1, keepdims=True)
    landmarks = np.full((len(head), 478, 3), 256.0)
    iris2d = project_points_np(centres_cam + eyes.radius * to_cam, INTR)
    landmarks[:, IRIS_CENTERS[0], :2], landmarks[:, IRIS_CENTERS[1], :2] = iris2d[:, 0], iris2d[:, 1]
    fit = {"identity": np.zeros(0), "rotation": rot, "translation": t, "intrinsics": INTR}
    for model, source in ((full, "model"), (face_only, "corners"), (face_only, "auto")):
        res = gaze_from_fit(landmarks, fit, model, GazeConfig(eyeballs=source))
        assert _angle_deg(res.eye_vectors, to_cam).max() < 3.0, source


# ------------------------------------------------------------------------------------------------------- blinks


def test_blink_frames_are_invalid_and_interpolated():
    py = np.zeros((7, 2, 2))
    py[:, :, 1] = np.linspace(-30, 30, 7)[:, None]
    iris2d, rot, t, g = _scene(np.zeros((7, 3)), py)
    iris2d[3, :, 1] += 15.0  # closed lids drag the iris points down: a wrong measurement
    names = ["_neutral", "eyeBlinkLeft", "eyeBlinkRight", "jawOpen"]
    bs = np.zeros((7, 4))
    bs[3, 1] = 0.9  # one eye shut is enough
    bs[4, 2] = 0.3  # below the threshold
    score = blink_scores(bs, names)
    np.testing.assert_allclose(score, [0, 0, 0, 0.9, 0.3, 0, 0])
    closed = score > GazeConfig().blink_threshold
    res = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS, eyes_closed=closed)
    assert res.eyes_closed.tolist() == closed.tolist() and not res.valid[3] and res.valid[[0, 1, 2, 4, 5, 6]].all()
    assert abs(res.eye_pitch_yaw_deg[3, 0, 0]) < 1.0 and abs(res.eye_pitch_yaw_deg[3, 0, 1]) < 1.0  # interpolated
    raw = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS)
    assert raw.eye_pitch_yaw_deg[3, 0, 0] < -10  # without the blink test the arrow flips down
    arrays = res.to_arrays()
    assert arrays["eyes_closed"].tolist() == closed.tolist()
    # eyes closed throughout: never NaN, the head's forward direction, nothing valid
    allc = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS, eyes_closed=np.ones(7, bool))
    assert not allc.valid.any() and np.isfinite(allc.eye_vectors).all()
    np.testing.assert_allclose(allc.head_pitch_yaw_deg, 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="eyeBlink"):
        blink_scores(bs[:, :2], names[:2])
    np.testing.assert_allclose(blink_scores(bs[:, [2, 1]], ["eyeBlink_R", "eyeBlink_L"]), score)


def test_gaze_config_checks():
    with pytest.raises(ValueError):
        GazeConfig(eyeballs="sphere")
    with pytest.raises(ValueError):
        GazeConfig(blink_threshold=0.0)
    with pytest.raises(ValueError):
        GazeConfig(eyeball_radius_cm=-1.0)


@pytest.mark.parametrize("bad", [np.zeros((3, 2, 3)), np.zeros((3, 3, 2))])
def test_estimate_gaze_rejects_bad_shapes(bad):
    with pytest.raises(ValueError):
        estimate_gaze(bad, CENTRES, np.tile(np.eye(3), (3, 1, 1)), np.zeros((3, 3)), INTR, RADIUS)


def test_qc_shows_eyes_closed_frames():
    from neural_renderer.qc import QcConfig, draw_tile, sheet_indices, tracking_stats

    closed = np.zeros(100, bool)
    closed[40:47] = True
    closed[80:82] = True
    idx = sheet_indices(100, 5, show=closed)
    assert 43 in idx and len(idx) == 5  # the middle of the longest closed stretch replaces the nearest sheet frame
    assert sheet_indices(100, 5).tolist() == [0, 25, 50, 74, 99]
    valid = np.ones(100, bool)
    stats = tracking_stats(
        valid, np.zeros((100, 478, 3)), np.zeros((100, 4)), np.ones(100), 256, gaze_valid=~closed, eyes_closed=closed
    )
    assert stats["eyes_closed_frames"] == 9 and stats["longest_eyes_closed_frames"] == 7
    assert stats["gaze_valid_rate"] == pytest.approx(0.91)
    frame = np.zeros((256, 256, 3), np.uint8)
    eyes, dirs = np.array([[100.0, 120.0], [156.0, 120.0]]), np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    measured = draw_tile(frame, None, None, eyes, dirs, "#1", QcConfig(tile=256))
    interpolated = draw_tile(frame, None, None, eyes, dirs, "#1", QcConfig(tile=256), gaze_measured=False)
    yellow, grey = (255, 230, 0), (150, 150, 150)
    assert (measured[118:152] == yellow).all(-1).any() and not (interpolated[118:152] == yellow).all(-1).any()
    assert (interpolated[118:152] == grey).all(-1).any()


# ------------------------------------------------------------------------------ the gaze stage on stored files


def _write_stage_inputs(tmp_path, model, head_euler_deg, head_gaze_py_deg, blink, drag_px):
    """crop.h5 / fit.h5 / track.h5 of a synthetic head: both eyes look along `head_gaze_py_deg` in head coordinates
    (the stage's own axes: (0, 0) straight out of the face), lids shut where `drag_px` moves the irises down."""
    n = len(head_euler_deg)
    identity = np.zeros(model.identity_basis.shape[0])
    centres = eyeball_centers_model(model, identity)
    radius = eyeball_model(model).radius
    rot = FLIP_YZ[None] @ Rotation.from_euler("xyz", head_euler_deg, degrees=True).as_matrix()
    t = np.tile([0.3, -2.0, 45.0], (n, 1))
    p, y = np.radians(head_gaze_py_deg).T
    # written out here, not with vectors_from_pitch_yaw: pitch = asin(-y), yaw = atan2(-x, -z), then head axes
    cam_style = np.stack([-np.cos(p) * np.sin(y), -np.sin(p), -np.cos(p) * np.cos(y)], 1)
    head_dirs = cam_style * [1.0, -1.0, -1.0]
    g = np.einsum("tij,tj->ti", rot, head_dirs)
    centres_cam = np.einsum("tij,ej->tei", rot, centres) + t[:, None]
    iris2d = project_points_np(centres_cam + radius * g[:, None], INTR)
    iris2d[:, :, 1] += drag_px[:, None]
    lm = np.full((n, 478, 3), 200.0)
    lm[:, IRIS_CENTERS[0], :2], lm[:, IRIS_CENTERS[1], :2] = iris2d[:, 0], iris2d[:, 1]
    write_crop(tmp_path / "crop.h5", lm)
    write_fit(tmp_path / "fit.h5", model, identity, rot, t, INTR)
    write_track(tmp_path / "track.h5", lm, blendshapes=blink)


def test_gaze_stage_stores_the_head_relative_gaze_and_masks_the_blinks(tmp_path, ict_model_npz):
    """The stored head_pitch_yaw_deg equals the gaze the scene was built with (0.5 deg) on measured frames, and frames
    whose blink score passes the threshold (and only those) are eyes_closed, invalid and interpolated, not measured
    from irises the lids dragged down."""
    from neural_renderer.stages import gaze as gaze_stage
    from neural_renderer.storage import read_stage

    n = 12
    k = np.arange(n)
    head = np.stack([6 * np.sin(k / 3), 15 * np.cos(k / 4), 3 * np.sin(k / 5)], 1)
    truth = np.stack([10 * np.sin(k / 2.5), 20 * np.cos(k / 3.5)], 1)
    blink = np.zeros((n, 4))
    blink[3, 1] = 0.9  # left eye shut
    blink[8, 2] = 0.8  # right eye shut
    blink[5, 1] = blink[6, 2] = 0.3  # half-closed: below the threshold, still measured
    drag = np.where(blink[:, 1:3].max(1) > 0.5, 25.0, 0.0)
    model = load_morphable_model(ict_model_npz)
    _write_stage_inputs(tmp_path, model, head, truth, blink, drag)
    gaze_stage.run(
        tmp_path / "crop.h5",
        tmp_path / "fit.h5",
        ict_model_npz,
        tmp_path / "gaze.h5",
        cfg={},
        track_h5=tmp_path / "track.h5",
    )
    out = read_stage(tmp_path / "gaze.h5", "gaze")
    closed = np.zeros(n, bool)
    closed[[3, 8]] = True
    assert out["eyes_closed"].tolist() == closed.tolist()
    assert out["valid"].tolist() == (~closed).tolist()
    np.testing.assert_allclose(out["blink_score"], blink[:, 1:3].max(1), atol=1e-6)
    err = np.abs(out["head_pitch_yaw_deg"] - truth)
    assert err[~closed].max() < 0.5, err
    # interpolated between the open-eye neighbours: near the smooth truth, not on the dragged irises (> 10 deg off)
    assert err[closed].max() < 3.0, err[closed]
    # the stored camera-space angles are the same gaze seen from the camera
    head_vec = out["head_vector"].astype(np.float64)
    rot = read_stage(tmp_path / "fit.h5", "fit")["rotation"].astype(np.float64)
    np.testing.assert_allclose(np.einsum("tij,tj->ti", rot, head_vec), out["vector"], atol=1e-5)
    # without the track the stage has no blink test: the dragged frames count as measured and point far off
    gaze_stage.run(tmp_path / "crop.h5", tmp_path / "fit.h5", ict_model_npz, tmp_path / "g2.h5", cfg={})
    blind = read_stage(tmp_path / "g2.h5", "gaze")
    assert blind["valid"].all() and not blind["eyes_closed"].any()
    assert (np.abs(blind["head_pitch_yaw_deg"][closed] - truth[closed]).max(1) > 10).all()


def test_gaze_from_fit_honours_units_eyeball_source_and_landmark_shapes(ict_with_eyes):
    """The radius override is in cm whatever the model's unit; gaze.eyeballs reaches the eyeball choice; 2-column
    landmarks work and too few points are refused; without blink scores nothing is marked closed."""
    full, face_only = ict_with_eyes
    eyes = full.eyeballs
    head = np.array([[0.0, 0.0, 0.0], [5.0, 10.0, 0.0]])
    rot = FLIP_YZ[None] @ Rotation.from_euler("xyz", head, degrees=True).as_matrix()
    t = np.tile([0.0, -3.5, 50.0], (2, 1))
    g = vectors_from_pitch_yaw(np.array([[[8.0, -10.0], [8.0, -10.0]], [[-5.0, 15.0], [-5.0, 15.0]]]))
    centres_cam = np.einsum("tij,ej->tei", rot, eyes.centers) + t[:, None]
    landmarks = np.full((2, 478, 2), 256.0)
    iris2d = project_points_np(centres_cam + eyes.radius * g, INTR)
    landmarks[:, IRIS_CENTERS[0]], landmarks[:, IRIS_CENTERS[1]] = iris2d[:, 0], iris2d[:, 1]
    fit = {"identity": np.zeros(0), "rotation": rot, "translation": t, "intrinsics": INTR}
    cfg = GazeConfig(eyeballs="model", eyeball_radius_cm=eyes.radius)
    res = gaze_from_fit(landmarks, fit, full, cfg)
    assert _angle_deg(res.eye_vectors, g).max() < 0.5
    # the same head in millimetres: a radius given in cm is scaled, so the answer is the same
    for units, scale in (("mm", 10.0), ("m", 0.01)):
        scaled = Eyeballs(eyes.centers * scale, eyes.radius * scale, np.zeros((0, 2, 3)))
        model = SimpleNamespace(eyeballs=scaled, units=units, name=f"ict in {units}")
        other = gaze_from_fit(landmarks, {**fit, "translation": scale * t}, model, cfg)
        np.testing.assert_allclose(other.eye_vectors, res.eye_vectors, atol=1e-6, err_msg=units)
    with pytest.raises(PipelineInputError, match="no eyeball data"):
        gaze_from_fit(landmarks, fit, face_only, GazeConfig(eyeballs="model"))
    with pytest.raises(PipelineInputError, match="no eyeball data"):
        eyeball_centers_model(face_only, None, "model")
    with pytest.raises(ValueError, match="iris points"):
        gaze_from_fit(landmarks[:, :473], fit, full, cfg)
    with pytest.raises(ValueError, match="iris points"):
        gaze_from_fit(landmarks[..., :1], fit, full, cfg)
    arrays = res.to_arrays()
    closed = arrays["eyes_closed"]
    assert closed.dtype == bool and closed.shape == (2,) and not closed.any()
    assert arrays["blink_score"].dtype == np.float32 and np.isnan(arrays["blink_score"]).all()


def test_gaze_from_fit_blink_threshold_nan_scores_valid_flags_and_a_lost_translation(ict_with_eyes):
    """The blink test is "score > threshold": a score at the threshold, or unknown (NaN), keeps the frame measured;
    the caller's `valid` reaches the estimate; a frame with a rotation but no translation is the only one lost."""
    full, _ = ict_with_eyes
    eyes = full.eyeballs
    n = 4
    head = np.array([[0.0, 0.0, 0.0], [5.0, 10.0, 0.0], [-4.0, -8.0, 2.0], [2.0, 5.0, -1.0]])
    rot = FLIP_YZ[None] @ Rotation.from_euler("xyz", head, degrees=True).as_matrix()
    t = np.tile([0.0, -3.5, 50.0], (n, 1))
    g = vectors_from_pitch_yaw(
        np.repeat(np.array([[8.0, -10.0], [-5.0, 15.0], [3.0, 4.0], [0.0, -6.0]])[:, None], 2, 1)
    )
    centres_cam = np.einsum("tij,ej->tei", rot, eyes.centers) + t[:, None]
    landmarks = np.full((n, 478, 2), 256.0)
    iris2d = project_points_np(centres_cam + eyes.radius * g, INTR)
    landmarks[:, IRIS_CENTERS[0]], landmarks[:, IRIS_CENTERS[1]] = iris2d[:, 0], iris2d[:, 1]
    fit = {"identity": np.zeros(0), "rotation": rot, "translation": t, "intrinsics": INTR}
    cfg = GazeConfig(eyeballs="model", eyeball_radius_cm=eyes.radius, blink_threshold=0.5)
    res = gaze_from_fit(landmarks, fit, full, cfg, blink_score=np.array([0.5, np.nan, 0.5001, 0.1]))
    assert res.eyes_closed.tolist() == [False, False, True, False]
    assert res.valid.tolist() == [True, True, False, True]
    assert np.isnan(res.blink_score[1]) and res.blink_score[0] == 0.5
    assert _angle_deg(res.eye_vectors[[0, 1, 3]], g[[0, 1, 3]]).max() < 0.5
    res = gaze_from_fit(landmarks, fit, full, cfg, valid=np.array([True, False, True, True]))
    assert res.valid.tolist() == [True, False, True, True] and not res.eyes_closed.any()
    lost = t.copy()
    lost[2, 1] = np.nan
    res = estimate_gaze(iris2d, eyes.centers, rot, lost, INTR, eyes.radius)
    assert res.valid.tolist() == [True, True, False, True]
    assert np.isnan(res.eyeball_centers[2]).all() and np.isfinite(res.eyeball_centers[[0, 1, 3]]).all()


def test_per_eye_outputs_and_which_frames_count_as_measured():
    """Per-eye head-relative angles, eyeball centres and iris points agree with the scene; a frame counts as measured
    only with iris points, a pose and `valid`; a frame without a pose stays NaN; eyes closed throughout give unit
    vectors straight out of the face, one per eye."""
    n = 6
    head = np.stack([np.linspace(-10, 10, n), np.linspace(20, -20, n), np.zeros(n)], 1)
    rel = np.stack([np.linspace(-15, 15, n), np.linspace(10, -10, n)], 1)
    r_head = Rotation.from_euler("xyz", head, degrees=True).as_matrix()
    g_cam = np.einsum("tij,tj->ti", FLIP_YZ[None] @ r_head, vectors_from_pitch_yaw(rel) @ FLIP_YZ.T)
    iris2d, rot, t, _ = _scene(head, pitch_yaw_from_vectors(np.repeat(g_cam[:, None], 2, axis=1)))
    res = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS)
    assert np.abs(res.head_eye_pitch_yaw_deg - rel[:, None]).max() < 0.5
    np.testing.assert_allclose(res.head_eye_vectors, np.einsum("tji,tej->tei", rot, res.eye_vectors), atol=1e-12)
    centres = np.einsum("tij,ej->tei", rot, CENTRES) + t[:, None]
    np.testing.assert_allclose(res.eyeball_centers, centres, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(res.iris_points - centres, axis=-1), RADIUS, atol=1e-9)
    np.testing.assert_allclose(project_points_np(res.iris_points, INTR), iris2d, atol=1e-6)
    # frame 1: no iris points though `valid`; frame 2: not `valid`; frame 4: no pose
    iris2d[1] = np.nan
    rot[4] = np.nan
    valid = np.ones(n, bool)
    valid[2] = False
    res = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS, valid=valid)
    assert res.valid.tolist() == [True, False, False, True, False, True]
    assert np.isnan(res.eye_vectors[4]).all() and np.isnan(res.eyeball_centers[4]).all()
    assert np.isfinite(res.eye_vectors[[0, 1, 2, 3, 5]]).all() and np.isfinite(res.eyeball_centers[[0, 5]]).all()
    assert np.isnan(res.iris_points[[1, 2, 4]]).all() and np.isfinite(res.iris_points[[0, 3, 5]]).all()
    shut = estimate_gaze(iris2d, CENTRES, rot, t, INTR, RADIUS, eyes_closed=np.ones(n, bool))
    ok = [0, 1, 2, 3, 5]
    assert shut.eye_vectors.shape == (n, 2, 3) and not shut.valid.any()
    np.testing.assert_allclose(np.linalg.norm(shut.eye_vectors[ok], axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(shut.head_eye_pitch_yaw_deg[ok], 0.0, atol=1e-9)
