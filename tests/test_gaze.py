"""Gaze from synthetic geometry: eyes at known poses and gaze directions, irises projected, gaze recovered."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from neural_renderer.fitting.camera import FLIP_YZ, default_intrinsics, project_points_np
from neural_renderer.fitting.config import GazeConfig
from neural_renderer.fitting.gaze import (
    IRIS_CENTERS,
    estimate_gaze,
    eye_corner_vertices,
    eyeball_centers_model,
    gaze_from_fit,
    order_iris_points,
    pitch_yaw_from_vectors,
    ray_sphere_intersection,
    vectors_from_pitch_yaw,
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
    assert set(arrays) == {"eye_vectors", "vector", "eye_pitch_yaw_deg", "pitch_yaw_deg", "head_vector",
                           "head_pitch_yaw_deg", "valid"}
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
    c = eyeball_centers_model(model, np.array([1.0, 0.0]), offset=1.2)
    np.testing.assert_allclose(c, [[-3.3, 3.3, 7.8], [3.3, 3.3, 7.8]], atol=1e-12)
    # mirrored model (x flipped): the rows still come out (subject's right, left)
    flipped = _Model(neutral * [-1, 1, 1], basis, lm)
    assert (eyeball_centers_model(flipped, None, 1.2)[:, 0] == [-3.2, 3.2]).all()

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
    res = gaze_from_fit(landmarks, _Fit(np.array([1.0, 0.0]), rot, t, INTR), model, GazeConfig(1.2, 1.2))
    assert np.abs(res.eye_pitch_yaw_deg - py).max() < 0.5
    # the fit stage's arrays (a mapping, as read back from fit.h5) work the same
    arrays = {"identity": np.array([1.0, 0.0]), "rotation": rot, "translation": t, "intrinsics": INTR}
    np.testing.assert_allclose(gaze_from_fit(landmarks, arrays, model).eye_vectors, res.eye_vectors)


@pytest.mark.parametrize("bad", [np.zeros((3, 2, 3)), np.zeros((3, 3, 2))])
def test_estimate_gaze_rejects_bad_shapes(bad):
    with pytest.raises(ValueError):
        estimate_gaze(bad, CENTRES, np.tile(np.eye(3), (3, 1, 1)), np.zeros((3, 3)), INTR, RADIUS)
