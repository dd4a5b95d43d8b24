"""Morphable-model fitting: solver maths, synthetic recovery, and a real MediaPipe track of d0.mp4."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from neural_renderer.fitting import (
    FitConfig,
    blendshapes_to_expression,
    default_intrinsics,
    fit_sequence_refined,
    project_model_points,
    select_keyframes,
)
from neural_renderer.fitting.camera import FLIP_YZ, head_to_camera_rotation, project_points, project_points_np
from neural_renderer.fitting.fit import interpolate_invalid
from neural_renderer.fitting.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from neural_renderer.fitting.solver import SequenceProblem, SequenceState, _build_system, _smoothness, sequence_cost
from neural_renderer.morphable import build_correspondence, load_morphable_model


@pytest.fixture(scope="module")
def ict(ict_model_npz):
    return load_morphable_model(ict_model_npz)


# ----------------------------------------------------------------------------------------------------- camera / maths


def test_camera_projection_and_flip():
    r = Rotation.random(4, random_state=0).as_matrix()
    full = head_to_camera_rotation(torch.from_numpy(r)).numpy()
    np.testing.assert_allclose(full, FLIP_YZ[None] @ r, atol=1e-15)
    pts = np.random.default_rng(0).normal(size=(4, 10, 3)) + [0, 0, 50]
    intr = default_intrinsics(512)
    np.testing.assert_allclose(
        project_points(torch.from_numpy(pts), torch.from_numpy(intr)).numpy(), project_points_np(pts, intr), atol=1e-10
    )
    np.testing.assert_allclose(intr, [1024, 1024, 256, 256])
    # a frontal upright face: model +y (up) lands above the centre, model +x (subject's left) on the image's right
    cam = np.array([[0.0, 5.0, 0.0], [5.0, 0.0, 0.0]]) @ FLIP_YZ.T + [0, 0, 60]
    uv = project_points_np(cam, intr)
    assert uv[0, 1] < 256 and uv[1, 0] > 256


def _small_problem(rng, t=6, n_points=40, ki=5, ke=7, smooth=True):
    neutral = rng.normal(size=(n_points, 3)) * 5
    prob = SequenceProblem(
        target=torch.from_numpy(rng.uniform(150, 350, size=(t, n_points, 2))),
        sqrt_w=torch.from_numpy(np.sqrt(rng.uniform(0.2, 1.0, size=(t, n_points)) / (t * n_points))),
        neutral=torch.from_numpy(neutral),
        id_basis=torch.from_numpy(rng.normal(size=(n_points, 3, ki)) * 0.3),
        exp_basis=torch.from_numpy(rng.normal(size=(n_points, 3, ke)) * 0.5),
        focal=1024.0,
        center=(256.0, 256.0),
        w_identity=0.1,
        w_expression=0.2,
        w_expression_smooth=0.3,
        w_expression_smooth2=0.7,
        w_rotation_smooth=50.0,
        w_translation_smooth=0.4,
        bounds=(0.0, 1.0),
        temporal=smooth,
        expression_target=torch.from_numpy(rng.uniform(0, 1, size=(t, ke))),  # the blendshape prior
        w_expression_target=torch.from_numpy(rng.uniform(0, 2, size=ke)),
    )
    state = SequenceState(
        identity=torch.from_numpy(rng.normal(size=ki)),
        expression=torch.from_numpy(rng.uniform(0.1, 0.9, size=(t, ke))),
        rotation=axis_angle_to_matrix(torch.from_numpy(rng.normal(size=(t, 3)) * 0.2)),
        translation=torch.from_numpy(np.c_[rng.normal(size=(t, 2)), rng.uniform(50, 60, t)]),
        log_focal=torch.tensor(0.05, dtype=torch.float64),
    )
    return prob, state


def test_gauss_newton_gradient_matches_finite_differences():
    """The analytic Jacobian products (incl. rotation increments, smoothness, focal) against the cost itself."""
    rng = np.random.default_rng(7)
    prob, st = _small_problem(rng)
    t, ke, ki = prob.n_frames, prob.n_expression, prob.n_identity
    sys_ = _build_system(prob, st, torch.float64, ki + 1, True)
    _, g_smooth = _smoothness(prob, st)
    g_frame = sys_.g_frame + g_smooth  # = 1/2 d cost / d frame unknowns
    eps = 1e-6

    def cost(s):
        return sequence_cost(prob, s)["total"]

    for frame, k in [(0, 0), (2, 1), (5, 2), (1, 3), (3, 5), (4, 6), (0, 6 + 2), (5, 6 + ke - 1)]:

        def bumped(h):
            d = torch.zeros(t, 6 + ke, dtype=torch.float64)
            d[frame, k] = h
            rot = axis_angle_to_matrix(d[:, :3]) @ st.rotation
            return replace(
                st, rotation=rot, translation=st.translation + d[:, 3:6], expression=st.expression + d[:, 6:]
            )

        num = (cost(bumped(eps)) - cost(bumped(-eps))) / (2 * eps)
        assert num / 2 == pytest.approx(g_frame[frame, k], rel=1e-5, abs=1e-9), (frame, k)
    for k in [0, 3, ki]:  # identity components and log focal

        def shared(h):
            if k == ki:
                return replace(st, log_focal=st.log_focal + h)
            a = st.identity.clone()
            a[k] += h
            return replace(st, identity=a)

        num = (cost(shared(eps)) - cost(shared(-eps))) / (2 * eps)
        assert num / 2 == pytest.approx(sys_.g_shared[k], rel=1e-5, abs=1e-9), k
    assert sequence_cost(prob, st)["blendshape_prior"] > 0
    assert prob.frames(np.array([1, 4])).expression_target.shape == (2, ke)


def test_blendshape_prior_decides_what_the_landmarks_do_not_see(ict):
    """A shape that moves no fitted point follows the tracker's blendshape (its prior target), not 0."""
    rng = np.random.default_rng(5)
    vertices = np.unique(np.r_[ict.landmarks_68, rng.choice(ict.n_vertices, 120, replace=False)])
    s = _synthetic_sequence(ict, vertices, n_frames=20)
    unseen = int(np.argmin(np.abs(s["sub"].expression_basis).reshape(ict.n_expression, -1).max(axis=1)))
    assert np.abs(s["sub"].expression_basis[unseen]).max() < 1e-3  # e.g. an eyeLook shape: no point on the eyeball
    init = np.clip(s["beta"], 0, 1)
    init[:, unseen] = 0.7
    matched = np.zeros(ict.n_expression, bool)
    matched[unseen] = True
    cfg = FitConfig(identity_frames=10, iterations_identity=5, iterations_sequence=5, refine_radius=0.0)
    res = fit_sequence_refined(
        s["noisy"], np.ones(20, bool), ict, vertices, 512, cfg, init_expression=init, init_matched=matched
    )
    np.testing.assert_allclose(res.expression[:, unseen], 0.7 * 0.5 / (0.5 + 0.05), atol=0.02)  # prior vs zero prior
    off = fit_sequence_refined(
        s["noisy"],
        np.ones(20, bool),
        ict,
        vertices,
        512,
        replace(cfg, w_blendshape_prior=0.0),
        init_expression=init,
        init_matched=matched,
    )
    assert np.abs(off.expression[:, unseen]).max() < 0.01  # without it the zero prior alone decides: 0
    extra = fit_sequence_refined(
        s["noisy"],
        np.ones(20, bool),
        ict,
        vertices,
        512,
        replace(cfg, w_expression_prior_extra={ict.expression_names[unseen]: 0.5, "noSuchShape": 9.0}),
        init_expression=init,
        init_matched=matched,
    )  # an extra zero prior of its own on that shape: pulled towards 0 by 0.05 + 0.5 against the blendshape's 0.5
    np.testing.assert_allclose(extra.expression[:, unseen], 0.7 * 0.5 / (0.5 + 0.05 + 0.5), atol=0.02)


def test_blendshapes_to_expression_maps_arkit_names():
    mp_names = ["_neutral", "browInnerUp", "eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "cheekPuff"]
    model_names = [
        "eyeBlink_L",
        "eyeBlink_R",
        "browInnerUp_L",
        "browInnerUp_R",
        "jawOpen",
        "cheekRaiser_L",
        "cheekPuff_R",
        "PupilDilate_L",
    ]
    bs = np.array([[0.9, 0.2, 0.7, 0.1, 0.5, 0.3], [np.nan] * 6, [0.0, 0.0, 1.2, -0.1, 0.0, 0.0]])
    e = blendshapes_to_expression(bs, mp_names, model_names)
    np.testing.assert_allclose(e[0], [0.7, 0.1, 0.2, 0.2, 0.5, 0.0, 0.3, 0.0], atol=1e-7)
    assert np.isnan(e[1]).all()
    np.testing.assert_allclose(e[2, :2], [1.0, 0.0])  # clipped into [0, 1]


def test_select_keyframes_and_interpolation():
    valid = np.ones(1000, bool)
    valid[:10] = False
    k = select_keyframes(valid, 150)
    assert len(k) == 150 and k[0] == 10 and k[-1] == 999 and valid[k].all()
    assert (select_keyframes(valid[:20], 150) == np.arange(10, 20)).all()
    v = np.array([[0.0], [np.nan], [np.nan], [3.0], [np.nan]])
    np.testing.assert_allclose(interpolate_invalid(v, np.isfinite(v[:, 0]))[:, 0], [0, 1, 2, 3, 3])


def test_fit_config_from_dict_rejects_unknown_keys():
    cfg = FitConfig.from_dict({"n_identity": 40, "expression_bounds": [0, 1]})
    assert cfg.n_identity == 40 and cfg.expression_bounds == (0.0, 1.0)
    with pytest.raises(ValueError, match="unknown"):
        FitConfig.from_dict({"n_identiy": 40})
    with pytest.raises(ValueError):
        FitConfig(focal_factor=0)


# ----------------------------------------------------------------------------------------------------- synthetic


def _synthetic_sequence(model, vertices, n_frames=50, seed=0, size=512):
    rng = np.random.default_rng(seed)
    sub = model.subset(vertices)
    alpha = np.zeros(model.n_identity)
    alpha[:40] = rng.normal(size=40) * 0.8
    t = np.arange(n_frames)
    active = rng.uniform(size=model.n_expression) < 0.3
    beta = np.clip(0.3 + 0.4 * np.sin(0.25 * t[:, None] + rng.uniform(0, 6, model.n_expression)), 0, 1) * active
    euler = np.stack([8 * np.sin(0.1 * t), 25 * np.sin(0.07 * t + 1), 5 * np.cos(0.13 * t)], axis=1)
    rot = FLIP_YZ[None] @ Rotation.from_euler("xyz", euler, degrees=True).as_matrix()
    trans = np.stack([np.sin(0.1 * t), 0.5 * np.cos(0.1 * t), 55 + 3 * np.sin(0.05 * t)], axis=1)
    intr = default_intrinsics(size)
    clean = project_model_points(sub, alpha, beta, rot, trans, intr)
    noisy = clean + rng.normal(size=clean.shape) * 0.5
    return dict(sub=sub, alpha=alpha, beta=beta, rot=rot, trans=trans, clean=clean, noisy=noisy)


def test_synthetic_recovery(ict):
    rng = np.random.default_rng(1)
    vertices = np.unique(np.r_[ict.landmarks_68, rng.choice(ict.n_vertices, 250, replace=False)])
    s = _synthetic_sequence(ict, vertices)
    valid = np.ones(50, bool)
    valid[[10, 11, 30]] = False
    pts = s["noisy"].copy()
    pts[~valid] = np.nan
    pts[5, :7] = np.nan  # a few missing points in a valid frame are ignored
    res = fit_sequence_refined(pts, valid, ict, vertices, 512, FitConfig(refine_radius=0.0))
    ok = res.valid
    assert (ok == valid).all()
    assert np.nanmean(res.reprojection_error_px) < 1.0
    assert np.isnan(res.reprojection_error_px[~valid]).all()
    rot_err = Rotation.from_matrix(np.einsum("tji,tjk->tik", res.rotation, s["rot"])).magnitude()
    assert np.degrees(rot_err[ok]).max() < 2.0
    assert np.abs(res.translation[ok, :2] - s["trans"][ok, :2]).max() < 0.5
    assert np.abs(res.translation[ok, 2] / s["trans"][ok, 2] - 1).max() < 0.05  # depth ~ identity scale
    # the fitted shapes reproduce the clean points (not just the noisy ones)
    uv = project_model_points(s["sub"], res.identity, res.expression, res.rotation, res.translation, res.intrinsics)
    assert np.linalg.norm(uv - s["clean"], axis=2)[ok].mean() < 0.7
    # invalid frames: interpolated from their neighbours
    assert np.degrees(rot_err[~valid]).max() < 3.0
    np.testing.assert_allclose(
        res.expression[10], res.expression[9] + (res.expression[12] - res.expression[9]) / 3, atol=1e-5
    )
    # the expression follows the one it was built with (measured: median correlation 0.985 over the 15 active
    # coefficients; mean error 0.040, a constant at each coefficient's mean 0.063)
    b, e = s["beta"][valid], res.expression[valid]
    active = b.std(0) > 0
    corr = [np.corrcoef(e[:, k], b[:, k])[0, 1] for k in np.flatnonzero(active)]
    assert np.median(corr) > 0.9, corr
    assert np.abs(e - b).mean() < 0.75 * np.abs(b - b.mean(0)).mean()
    # consistency of the stored forms
    np.testing.assert_allclose(Rotation.from_rotvec(res.axis_angle).as_matrix(), res.rotation, atol=1e-5)
    np.testing.assert_allclose(
        FLIP_YZ[None] @ Rotation.from_rotvec(res.head_axis_angle).as_matrix(), res.rotation, atol=1e-5
    )
    assert res.identity.shape == (ict.n_identity,) and res.expression.shape == (50, ict.n_expression)


def test_fit_rejects_bad_input(ict):
    with pytest.raises(ValueError, match="68 correspondence vertices but points2d has 10 landmarks"):
        fit_sequence_refined(np.zeros((3, 10, 2)), np.ones(3, bool), ict, ict.landmarks_68, 512)
    from neural_renderer.errors import PipelineInputError

    with pytest.raises(PipelineInputError):
        fit_sequence_refined(np.full((3, 68, 2), np.nan), np.zeros(3, bool), ict, ict.landmarks_68, 512)


def test_to_arrays_matches_the_storage_schema(ict):
    s = _synthetic_sequence(ict, ict.landmarks_68, n_frames=8)
    cfg = FitConfig(iterations_identity=3, iterations_sequence=2)
    res = fit_sequence_refined(s["noisy"], np.ones(8, bool), ict, ict.landmarks_68, 512, cfg)

    class Corr:
        mediapipe_idx = np.arange(68)
        model_vertex = ict.landmarks_68

    arrays = res.to_arrays(Corr())
    schema = pytest.importorskip("neural_renderer.storage.schema")
    schema.validate_arrays("fit", arrays)


# ----------------------------------------------------------------------------------------------------- real video


@pytest.fixture(scope="module")
def d0_track(videos_dir, landmarker_model, ict, ict_model_npz):
    from neural_renderer.crop import CropConfig, compute_crop_boxes, landmarks_to_crop
    from neural_renderer.tracking import track_frames
    from neural_renderer.video import iter_frames, probe_video

    path = videos_dir / "d0.mp4"
    info = probe_video(path)
    track = track_frames(iter_frames(path, info), info.fps, landmarker_model)
    boxes = compute_crop_boxes(track.landmarks, track.valid, (info.width, info.height), CropConfig(resolution=512))
    crop = landmarks_to_crop(track.landmarks, boxes, 512)
    corr = build_correspondence(ict, landmarker_model, dense=True)
    init = blendshapes_to_expression(track.blendshapes, track.blendshape_names, ict.expression_names)
    return dict(crop=crop, valid=track.valid, corr=corr, init=init)


def _assert_follows_mediapipe(expression: np.ndarray, blendshapes: np.ndarray, ict) -> None:
    """The fitted jaw and lids move with MediaPipe's own jawOpen / eyeBlink scores over the clip (measured on all 78
    frames: correlation 0.96-0.98, refined or not); a fit that ignores the face has none."""
    for name in ("jawOpen", "eyeBlink_L", "eyeBlink_R"):
        k = list(ict.expression_names).index(name)
        corr = np.corrcoef(expression[:, k], blendshapes[:, k])[0, 1]
        assert corr > 0.9, (name, corr)


@pytest.mark.slow
def test_real_d0_fit(d0_track, ict):
    corr = d0_track["corr"]
    pts = d0_track["crop"][:, corr.mediapipe_idx, :2]
    valid = d0_track["valid"].copy()
    assert valid.all()
    valid[[20, 21, 22]] = False  # pretend the tracker lost the face
    pts[~valid] = np.nan
    res = fit_sequence_refined(
        pts,
        valid,
        ict,
        corr.model_vertex,
        512,
        FitConfig(),
        init_expression=d0_track["init"],
        point_weights=corr.weight,
    )
    err = res.reprojection_error_px
    assert np.nanmean(err) < 2.5, np.nanmean(err)
    assert np.isnan(err[~valid]).all() and np.isfinite(err[valid]).all()
    _assert_follows_mediapipe(res.expression, d0_track["init"], ict)
    steps = Rotation.from_matrix(np.einsum("tij,tkj->tik", res.rotation[1:], res.rotation[:-1])).magnitude()
    assert np.degrees(steps).max() < 10.0
    # the gap: parameters interpolated between the neighbours (head pose, translation, expression)
    for name in ("head_axis_angle", "translation", "expression"):
        v = getattr(res, name)
        np.testing.assert_allclose(v[21], (v[19] + v[23]) / 2, atol=1e-4)
    # refined correspondences stay on the mesh near the generic ones
    moved = np.linalg.norm(ict.neutral[res.model_vertex] - ict.neutral[corr.model_vertex], axis=1)
    assert moved.max() < 1.0
    # QC projection of the stored result reproduces the reported error
    uv = project_model_points(
        ict, res.identity, res.expression, res.rotation, res.translation, res.intrinsics, res.model_vertex
    )
    per_frame = np.linalg.norm(uv - pts, axis=2).mean(axis=1)
    np.testing.assert_allclose(per_frame[valid], err[valid], rtol=1e-3)


@pytest.mark.slow
def test_real_d0_fit_generic_correspondence(d0_track, ict):
    """Without refinement the generic correspondence's per-landmark bias stays in the error (see fit.py)."""
    corr = d0_track["corr"]
    pts = d0_track["crop"][:, corr.mediapipe_idx, :2]
    res = fit_sequence_refined(
        pts,
        d0_track["valid"],
        ict,
        corr.model_vertex,
        512,
        FitConfig(refine_radius=0.0),
        init_expression=d0_track["init"],
        point_weights=corr.weight,
    )
    assert np.nanmean(res.reprojection_error_px) < 3.0
    _assert_follows_mediapipe(res.expression, d0_track["init"], ict)


# ----------------------------------------------------------------------------------------------------- windows


def test_a_window_holds_the_whole_problems_terms_within_it():
    """Two windows that split a sequence carry every cost term of the whole except those across their border:
    what the windowed fit drops, and nothing else (weights rescaled exactly, not approximately)."""
    rng = np.random.default_rng(3)
    prob, st = _small_problem(rng, t=9)
    whole = sequence_cost(prob, st)
    assert sequence_cost(prob.window(0, 9), st) == pytest.approx(whole, rel=1e-12)
    left = sequence_cost(prob.window(0, 5), st.frames(np.arange(5)))
    right = sequence_cost(prob.window(5, 9), st.frames(np.arange(5, 9)))
    t, e, tr = 9, st.expression.numpy(), st.translation.numpy()
    rel = matrix_to_axis_angle(st.rotation[5] @ st.rotation[4].T).numpy()
    across = {  # the terms that couple frame 4 (left) with frame 5 (right)
        "expression_smooth": prob.w_expression_smooth / (t - 1) * ((e[5] - e[4]) ** 2).sum(),
        "expression_smooth2": prob.w_expression_smooth2
        / (t - 2)
        * (((e[5] - 2 * e[4] + e[3]) ** 2).sum() + ((e[6] - 2 * e[5] + e[4]) ** 2).sum()),
        "rotation_smooth": prob.w_rotation_smooth / (t - 1) * (rel**2).sum(),
        "translation_smooth": prob.w_translation_smooth / (t - 1) * ((tr[5] - tr[4]) ** 2).sum(),
    }
    for term, value in whole.items():
        if term != "total":
            assert left[term] + right[term] + across.get(term, 0.0) == pytest.approx(value, rel=1e-9), term
    with pytest.raises(ValueError, match="outside"):
        prob.window(3, 10)


def test_window_bounds_cover_every_frame_with_the_overlap():
    from neural_renderer.fitting.fit import window_bounds

    assert window_bounds(1000, 1000, 100) == [(0, 1000)]
    assert window_bounds(3000, 1000, 100) == [(0, 825), (725, 1550), (1450, 2275), (2175, 3000)]
    for n in (1001, 1900, 2345, 10_000, 18_138):
        w = window_bounds(n, 1000, 100)
        assert w[0][0] == 0 and w[-1][1] == n and len({b - a for a, b in w}) == 1 and w[0][1] <= 1000
        assert all(w[k + 1][0] <= w[k][1] - 100 for k in range(len(w) - 1))  # overlaps of at least 100
        assert len(w) == -(-(n - 100) // 900)  # no more windows than the overlap needs


def test_windowed_fit_matches_the_whole_solve_and_its_seams_do_not_jump(ict):
    """Stage 3 in windows of at most 36 frames (overlap 10: four of 33) on a 100-frame synthetic sequence, against
    one window: the same parameters, and no jump at the window borders. Measured: mean |d expression| 0.0005 (max
    0.07, one coefficient of one frame), head rotation within 0.006°, reprojection error 0.9999x; across the borders
    the summed change of the 53 coefficients differs from the whole solve's by at most 0.017 (a typical frame's
    change: 1.05). Windows without overlap jump there: 0.38, and 0.018° of rotation."""
    rng = np.random.default_rng(2)
    vertices = np.unique(np.r_[ict.landmarks_68, rng.choice(ict.n_vertices, 60, replace=False)])
    n = 100
    s = _synthetic_sequence(ict, vertices, n_frames=n, seed=4)
    cfg = FitConfig(refine_radius=0.0, identity_frames=30, window_frames=n, window_overlap=10)
    whole = fit_sequence_refined(s["noisy"], np.ones(n, bool), ict, vertices, 512, cfg)
    win = fit_sequence_refined(s["noisy"], np.ones(n, bool), ict, vertices, 512, replace(cfg, window_frames=36))
    assert "sequence_windows" not in whole.stage_iterations and win.stage_iterations["sequence_windows"] == 4
    np.testing.assert_array_equal(win.identity, whole.identity)  # stage 2 is not windowed
    d_expr = np.abs(win.expression - whole.expression)
    assert d_expr.mean() < 0.003 and d_expr.max() < 0.2, (d_expr.mean(), d_expr.max())
    d_rot = Rotation.from_matrix(np.einsum("tji,tjk->tik", win.rotation, whole.rotation)).magnitude()
    assert np.degrees(d_rot).max() < 0.012
    assert abs(np.nanmean(win.reprojection_error_px) / np.nanmean(whole.reprojection_error_px) - 1) < 0.01
    # seams: the frame-to-frame change of the expression across each window border (where a window's solution
    # starts or stops counting) is the one the whole solve has there
    from neural_renderer.fitting.fit import window_bounds

    bounds = window_bounds(n, 36, 10)
    at = np.array(sorted({b - 1 for _, b in bounds[:-1]} | {a - 1 for a, _ in bounds[1:]}))
    step_win = np.abs(np.diff(win.expression, axis=0)).sum(axis=1)[at]
    step_whole = np.abs(np.diff(whole.expression, axis=0)).sum(axis=1)[at]
    assert np.abs(step_win - step_whole).max() < 0.1, (step_win, step_whole)
