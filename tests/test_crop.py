"""Crop maths (coordinate maps, smoothing, boxes), pixel crops, and a crop of a real tracked frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from neural_renderer.config import build_dataclass
from neural_renderer.crop import (
    CropConfig,
    compute_crop_boxes,
    crop_frame,
    crop_to_source,
    interpolate_invalid,
    landmarks_to_crop,
    one_euro_filter,
    savgol_smooth,
)
from neural_renderer.errors import PipelineInputError
from neural_renderer.tracking import track_frames
from neural_renderer.video import iter_frames, probe_video

# ---------------------------------------------------------------------------------------------------------------
# config


def test_crop_config_validation():
    assert CropConfig().resolution == 512
    for bad in [dict(resolution=300), dict(resolution=True), dict(margin=-0.1), dict(smoothing="kalman"),
                dict(savgol_window=10), dict(savgol_window=5, savgol_polyorder=5), dict(one_euro_min_cutoff=0),
                dict(one_euro_beta=-1), dict(vertical_offset=2)]:  # fmt: skip
        with pytest.raises(ValueError):
            CropConfig(**bad)
    assert build_dataclass(CropConfig, {"resolution": 1024, "smoothing": "one_euro"}).resolution == 1024
    with pytest.raises(PipelineInputError, match="resolution"):
        build_dataclass(CropConfig, {"resolution": 100})


# ---------------------------------------------------------------------------------------------------------------
# coordinate maps


def test_landmarks_to_crop_known_values():
    box = np.array([100.0, 200.0, 50.0])  # covers x 75..125, y 175..225
    pts = np.array([[75.0, 175.0, 10.0], [125.0, 225.0, -5.0], [100.0, 200.0, 0.0]])
    out = landmarks_to_crop(pts, box, 512)
    np.testing.assert_allclose(out, [[0, 0, 10 * 512 / 50], [512, 512, -5 * 512 / 50], [256, 256, 0]])


def test_crop_to_source_inverts_landmarks_to_crop():
    rng = np.random.default_rng(1)
    t = 7
    x = rng.uniform(-50, 600, (t, 478, 3))
    boxes = np.column_stack([rng.uniform(100, 400, t), rng.uniform(100, 400, t), rng.uniform(20, 900, t)])
    for res in (256, 512, 1024):
        crop = landmarks_to_crop(x, boxes, res)
        assert crop.shape == x.shape
        np.testing.assert_allclose(crop_to_source(crop, boxes, res), x, rtol=0, atol=1e-9)
    x2 = x[..., :2]  # 2-D points work too
    np.testing.assert_allclose(crop_to_source(landmarks_to_crop(x2, boxes, 256), boxes, 256), x2, atol=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# smoothing


def test_interpolate_invalid_fills_gaps_and_holds_edges():
    values = np.array([[np.nan], [np.nan], [2.0], [np.nan], [np.nan], [8.0], [np.nan]])
    valid = np.isfinite(values[:, 0])
    out = interpolate_invalid(values, valid)
    np.testing.assert_allclose(out[:, 0], [2, 2, 2, 4, 6, 8, 8])
    assert np.isnan(values[0, 0])  # input untouched
    with pytest.raises(ValueError):
        interpolate_invalid(values, np.zeros(7, bool))


def test_savgol_keeps_polynomials_and_removes_noise():
    t = np.arange(200, dtype=float)
    clean = np.column_stack([3 + 0.5 * t, 0.01 * (t - 100) ** 2])
    np.testing.assert_allclose(savgol_smooth(clean, 15, 2), clean, atol=1e-8)
    noisy = clean + np.random.default_rng(0).normal(0, 1, clean.shape)
    residual = savgol_smooth(noisy, 15, 2) - clean
    assert residual.std() < 0.5 * (noisy - clean).std()
    short = noisy[:4]  # window shrinks to the signal; too short -> unchanged
    np.testing.assert_array_equal(savgol_smooth(short, 15, 2), short)


def _one_euro_reference(x: np.ndarray, rate: float, min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    """Scalar one-euro filter written straight from Casiez et al. 2012 (x_hat_prev in the derivative)."""

    def alpha(fc):
        tau = 1 / (2 * np.pi * fc)
        return 1 / (1 + tau * rate)

    out, dx_hat = [x[0]], 0.0
    for xi in x[1:]:
        dx = (xi - out[-1]) * rate
        dx_hat = alpha(d_cutoff) * dx + (1 - alpha(d_cutoff)) * dx_hat
        a = alpha(min_cutoff + beta * abs(dx_hat))
        out.append(a * xi + (1 - a) * out[-1])
    return np.array(out)


def test_one_euro_vectorised_matches_scalar_reference():
    rng = np.random.default_rng(2)
    x = np.cumsum(rng.normal(0, 1, (120, 3)), axis=0)
    out = one_euro_filter(x, 30.0, 0.8, 0.3, 1.0)
    for j in range(3):
        np.testing.assert_allclose(out[:, j], _one_euro_reference(x[:, j], 30.0, 0.8, 0.3, 1.0), rtol=1e-12)


def test_one_euro_reduces_jitter_and_tracks_a_step():
    """In the units compute_crop_boxes uses (box sides) with CropConfig's defaults: 0.3% jitter, a 10% jump."""
    cfg = CropConfig()
    rng = np.random.default_rng(3)
    fps = 30.0
    truth = np.where(np.arange(300) < 150, 0.0, 0.1)[:, None]
    noisy = truth + rng.normal(0, 0.003, truth.shape)
    params = dict(min_cutoff=cfg.one_euro_min_cutoff, d_cutoff=cfg.one_euro_d_cutoff)
    out = one_euro_filter(noisy, fps, beta=cfg.one_euro_beta, **params)
    still = slice(30, 150)
    assert np.diff(out[still, 0]).std() < 0.2 * np.diff(noisy[still, 0]).std()  # frame-to-frame jitter
    assert np.abs(out[still, 0]).std() < 0.5 * np.abs(noisy[still, 0]).std()
    assert abs(out[150 + int(fps), 0] - 0.1) < 0.005  # settled within a second of the step
    # beta is what lets it follow fast motion: without it the lag after the step is much larger
    slow = one_euro_filter(noisy, fps, beta=0.0, **params)
    assert abs(slow[150 + 5, 0] - 0.1) > 2 * abs(out[150 + 5, 0] - 0.1)


# ---------------------------------------------------------------------------------------------------------------
# boxes


def _synthetic_faces(t: int, rng, jitter: float = 0.5) -> np.ndarray:
    """A 100 x 120 px 'face' (mesh-sized point cloud) centred at (200, 150), with per-frame jitter."""
    base = np.column_stack([rng.uniform(150, 250, 478), rng.uniform(90, 210, 478), rng.uniform(-20, 20, 478)])
    base[0, :2], base[1, :2] = (150, 90), (250, 210)  # pin the extent
    return base[None] + rng.normal(0, jitter, (t, 1, 3)) * [1, 1, 0]


@pytest.mark.parametrize("smoothing", ["savgol", "one_euro", "none"])
def test_compute_crop_boxes(smoothing):
    rng = np.random.default_rng(4)
    t = 90
    landmarks = _synthetic_faces(t, rng)
    valid = np.ones(t, bool)
    valid[[0, 1, 40, 41, 42, 89]] = False
    landmarks[~valid] = np.nan
    cfg = CropConfig(margin=0.5, smoothing=smoothing)
    boxes = compute_crop_boxes(landmarks, valid, (400, 300), cfg, fps=30.0)
    assert boxes.shape == (t, 3) and boxes.dtype == np.float64 and np.isfinite(boxes).all()
    np.testing.assert_allclose(boxes[:, 0], 200, atol=2.0)
    np.testing.assert_allclose(boxes[:, 1], 150, atol=2.0)
    np.testing.assert_allclose(boxes[:, 2], 120 * 1.5, atol=1.0)
    if smoothing != "none":
        raw = compute_crop_boxes(landmarks, valid, (400, 300), CropConfig(margin=0.5, smoothing="none"))
        assert np.diff(boxes[10:80, 0]).std() < 0.6 * np.diff(raw[10:80, 0]).std()


def test_crop_boxes_vertical_offset_and_all_invalid():
    rng = np.random.default_rng(5)
    landmarks = _synthetic_faces(10, rng, jitter=0.0)
    valid = np.ones(10, bool)
    plain = compute_crop_boxes(landmarks, valid, (400, 300), CropConfig(smoothing="none"))
    up = compute_crop_boxes(landmarks, valid, (400, 300), CropConfig(smoothing="none", vertical_offset=-0.1))
    np.testing.assert_allclose(up[:, 1], plain[:, 1] - 0.1 * plain[:, 2])
    np.testing.assert_allclose(up[:, [0, 2]], plain[:, [0, 2]])
    with pytest.raises(PipelineInputError, match="clip.mp4.*no valid face"):
        compute_crop_boxes(
            np.full_like(landmarks, np.nan), np.zeros(10, bool), (400, 300), CropConfig(), source="clip.mp4"
        )


# ---------------------------------------------------------------------------------------------------------------
# pixel crops


def _blob_image(width: int, height: int, centre: tuple[float, float], sigma: float) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width] + 0.5  # pixel centres
    blob = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return np.repeat((blob * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def _centroid(image: np.ndarray) -> np.ndarray:
    w = image[..., 0].astype(float)
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]] + 0.5
    return np.array([(xs * w).sum() / w.sum(), (ys * w).sum() / w.sum()])


@pytest.mark.parametrize("side", [900.0, 333.3, 100.0, 37.5], ids=["down3.5x", "down1.3x", "up2.6x", "up6.8x"])
def test_crop_frame_is_consistent_with_landmarks_to_crop(side):
    centre = (517.3, 402.8)
    sigma = max(4.0, side / 40)
    image = _blob_image(1100, 900, centre, sigma)
    box = np.array([centre[0] + 0.17 * side, centre[1] - 0.11 * side, side])  # blob off-centre, sub-pixel box
    out = crop_frame(image, box, 256)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    expected = landmarks_to_crop(np.array([[centre[0], centre[1]]]), box, 256)[0]
    np.testing.assert_allclose(_centroid(out), expected, atol=0.25)


def test_crop_frame_downscaling_does_not_alias():
    checker = (np.indices((800, 800)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(checker[..., None], 3, axis=2)
    out = crop_frame(image, np.array([400.0, 400.0, 700.0]), 256).astype(float)
    assert abs(out.mean() - 127.5) < 3 and out.std() < 6  # a flat grey, not moire
    naive = cv2.resize(image[50:750, 50:750], (256, 256), interpolation=cv2.INTER_NEAREST).astype(float)
    assert naive.std() > 50  # what plain point sampling would give


def test_crop_frame_padding():
    image = np.full((100, 100, 3), 200, np.uint8)
    box = np.array([10.0, 50.0, 60.0])  # x from -20 to 40: the left third is outside
    black = crop_frame(image, box, 256)
    assert (black[:, :80] == 0).all() and (black[:, 90:] == 200).all()
    edge = crop_frame(image, box, 256, pad="edge")
    assert (edge == 200).all()
    with pytest.raises(ValueError):
        crop_frame(image, np.array([10.0, 50.0, 0.0]), 256)


# ---------------------------------------------------------------------------------------------------------------
# real frames


def test_crop_of_real_frames(videos_dir, landmarker_model):
    info = probe_video(videos_dir / "d12.mp4")  # glasses + hand near the face
    frames = []
    for i, frame in enumerate(iter_frames(info.path, info)):
        if i % 12 == 0:
            frames.append(frame)
        if len(frames) == 8:
            break
    track = track_frames(frames, info.fps / 12, landmarker_model)
    assert track.valid.sum() >= 6
    cfg = CropConfig(resolution=256, smoothing="none", vertical_offset=0.0)
    boxes = compute_crop_boxes(track.landmarks, track.valid, (info.width, info.height), cfg)
    crop_lm = landmarks_to_crop(track.landmarks, boxes, cfg.resolution)
    for i in np.flatnonzero(track.valid):
        lm = crop_lm[i, :468, :2]
        assert (lm > 0).all() and (lm < cfg.resolution).all()
        face_centre = (lm.min(axis=0) + lm.max(axis=0)) / 2
        np.testing.assert_allclose(face_centre, cfg.resolution / 2, atol=0.01 * cfg.resolution)
        # the pixels agree with the coordinate map: the crop's colour at mapped landmarks = the source's colour
        crop = crop_frame(frames[i], boxes[i], cfg.resolution).astype(float)
        src_xy = np.floor(track.landmarks[i, :468, :2]).astype(int)
        dst_xy = np.clip(np.floor(lm).astype(int), 0, cfg.resolution - 1)
        src_rgb = frames[i][src_xy[:, 1], src_xy[:, 0]].astype(float)
        dst_rgb = crop[dst_xy[:, 1], dst_xy[:, 0]]
        assert np.abs(src_rgb - dst_rgb).mean() < 12
        shuffled = dst_rgb[np.random.default_rng(0).permutation(len(dst_rgb))]
        assert np.abs(src_rgb - shuffled).mean() > np.abs(src_rgb - dst_rgb).mean() + 5


def test_crop_stage_applies_the_configured_smoothing(tmp_path):
    """The stage passes its `crop:` section through: each smoothing setting (and window) gives other stored boxes,
    and the landmarks stored beside them are in the crop those boxes cut."""
    from stage_files import write_track

    from neural_renderer.stages import crop as crop_stage
    from neural_renderer.storage import read_attrs, read_stage

    landmarks = _synthetic_faces(60, np.random.default_rng(8), jitter=2.0)
    write_track(tmp_path / "track.h5", landmarks, size=(400, 300), fps=30.0)

    def boxes(**cfg):
        out = tmp_path / f"crop_{len(list(tmp_path.iterdir()))}.h5"
        crop_stage.run(tmp_path / "track.h5", out, cfg={"resolution": 256, "margin": 0.5, **cfg})
        stored = read_stage(out, "crop")
        assert read_attrs(out)["resolution"] == 256
        np.testing.assert_allclose(
            stored["landmarks"], landmarks_to_crop(landmarks, stored["boxes"], 256), rtol=1e-5, atol=1e-3
        )
        return stored["boxes"]

    raw = boxes(smoothing="none")
    jitter = {"none": np.diff(raw[:, 0]).std()}
    # 'none': each frame's mesh bounding box (centre, longer side x 1.5), computed here
    xy = landmarks[:, :468, :2]
    lo, hi = xy.min(1), xy.max(1)
    np.testing.assert_allclose(raw[:, :2], (lo + hi) / 2, atol=1e-4)
    np.testing.assert_allclose(raw[:, 2], 1.5 * (hi - lo).max(1), atol=1e-4)
    for smoothing, extra in (("savgol", {}), ("one_euro", {}), ("savgol", {"savgol_window": 31})):
        smoothed = boxes(smoothing=smoothing, **extra)
        jitter[smoothing + str(extra)] = np.diff(smoothed[:, 0]).std()
        assert np.diff(smoothed[:, 0]).std() < 0.6 * jitter["none"], jitter
    assert not np.allclose(boxes(smoothing="savgol"), boxes(smoothing="savgol", savgol_window=31))
    assert not np.allclose(boxes(smoothing="savgol"), boxes(smoothing="one_euro"))


def test_smoothing_edge_cases_and_arguments():
    """Short signals: the window shrinks to the longest odd length that fits (scipy's own filter as the reference),
    down to polyorder + 2 frames; the one-euro filter takes one frame, no frame, rates below 1 Hz, and refuses
    non-positive rates and cutoffs or a negative beta. Inputs are never written to."""
    from scipy.signal import savgol_filter

    rng = np.random.default_rng(6)
    for n, window, polyorder, used in ((8, 15, 2, 7), (9, 15, 2, 9), (4, 15, 1, 3), (9, 5, 2, 5)):
        x = rng.normal(size=(n, 3))
        expected = savgol_filter(x, used, polyorder, axis=0, mode="interp")
        np.testing.assert_allclose(savgol_smooth(x, window, polyorder), expected, atol=1e-12, err_msg=str(n))
        assert not np.allclose(expected, x)
    x = rng.normal(size=(4, 3))
    np.testing.assert_array_equal(savgol_smooth(x, 15, 2), x)  # 3 frames < polyorder + 2: left as it is
    sig = rng.normal(size=(30, 2))
    kept = sig.copy()
    np.testing.assert_allclose(one_euro_filter(sig, 30.0, 1.0, 0.5), one_euro_filter(sig, 30.0, 1.0, 0.5, 1.0))
    assert not np.allclose(one_euro_filter(sig, 30.0, 1.0, 0.5), one_euro_filter(sig, 30.0, 1.0, 0.5, 3.0))
    np.testing.assert_array_equal(one_euro_filter(sig[:1], 30.0, 1.0, 0.5), sig[:1])
    assert one_euro_filter(sig[:0], 30.0, 1.0, 0.5).shape == (0, 2)
    assert np.isfinite(one_euro_filter(sig, 0.5, 0.1, 0.5)).all()  # a slow source: 0.5 frames per second
    for bad in ((0.0, 1.0, 0.5, 1.0), (30.0, 0.0, 0.5, 1.0), (30.0, 1.0, 0.5, 0.0), (30.0, 1.0, -0.1, 1.0)):
        with pytest.raises(ValueError, match="one_euro_filter needs"):
            one_euro_filter(sig, *bad)
    np.testing.assert_array_equal(sig, kept)
    boxes = np.tile([200.0, 150.0, 180.0], (2, 1))
    points = rng.uniform(0, 256, size=(2, 5, 3))
    before = points.copy()
    crop_to_source(points, boxes, 256)
    np.testing.assert_array_equal(points, before)


def test_config_bounds_are_inclusive_where_documented():
    for ok in (
        {"margin": 0.0},
        {"margin": 5.0},
        {"vertical_offset": -1.0},
        {"vertical_offset": 1.0},
        {"savgol_window": 3, "savgol_polyorder": 0},
        {"one_euro_beta": 0.0},
    ):
        CropConfig(**ok)
    for bad in (
        {"margin": 5.01},
        {"vertical_offset": -1.01},
        {"savgol_window": 5, "savgol_polyorder": -1},
        {"one_euro_d_cutoff": 0.0},
        {"one_euro_min_cutoff": 0.0},
    ):
        with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
            CropConfig(**bad)


def test_raw_face_boxes_need_a_detection_and_finite_image_points():
    from neural_renderer.crop.boxes import raw_face_boxes

    lm = _synthetic_faces(4, np.random.default_rng(9), jitter=0.0)
    valid = np.array([True, False, True, True])
    lm[2, 10, 0] = np.nan  # a lost point: the frame is unusable
    lm[3, :, 2] = np.nan  # depth unknown: x, y are all a box needs
    boxes, ok = raw_face_boxes(lm, valid)
    assert ok.tolist() == [True, False, False, True]
    assert np.isnan(boxes[[1, 2]]).all() and np.isfinite(boxes[[0, 3]]).all()
    np.testing.assert_allclose(raw_face_boxes(lm[..., :2], valid)[0][0], boxes[0])  # (T, 478, 2) works too
    for bad in (lm[:, :467], lm[0], lm[..., :1]):
        with pytest.raises(ValueError, match="landmarks must be"):
            raw_face_boxes(bad, valid)


def test_crop_refusals_are_exact_and_the_one_euro_settings_reach_the_filter():
    """Each refusal's message, letter for letter (they are what a user reads); image sizes down to 1 px and boxes
    under a pixel are accepted; the one-euro branch hands min_cutoff, beta and d_cutoff to the filter in that order,
    in units of the median box side, at 30 fps unless told."""

    def says(call, message):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == message

    says(lambda: interpolate_invalid(np.zeros((3, 2)), np.ones(2, bool)), "valid must have shape (3,), got (2,)")
    says(lambda: interpolate_invalid(np.zeros((3, 2)), np.zeros(3, bool)), "no valid rows to interpolate from")
    message = "one_euro_filter needs rate_hz, min_cutoff, d_cutoff > 0 and beta >= 0"
    says(lambda: one_euro_filter(np.zeros((3, 2)), 30.0, 1.0, -1.0), message)
    for kwargs, text in (
        ({"resolution": 300}, "resolution must be one of (256, 512, 1024), got 300"),
        ({"margin": 6.0}, "margin must be in [0, 5] (fraction of the face size), got 6.0"),
        ({"vertical_offset": 2.0}, "vertical_offset must be in [-1, 1] (fraction of the box side), got 2.0"),
        ({"smoothing": "x"}, "smoothing must be one of ('savgol', 'one_euro', 'none'), got 'x'"),
        ({"savgol_window": 4}, "savgol_window must be an odd number of frames >= 3, got 4"),
        ({"savgol_polyorder": 15}, "savgol_polyorder must be in [0, savgol_window), got 15"),
        ({"one_euro_d_cutoff": 0.0}, "one_euro_min_cutoff and one_euro_d_cutoff must be > 0 (Hz)"),
        ({"one_euro_beta": -1.0}, "one_euro_beta must be >= 0, got -1.0"),
    ):
        says(lambda kwargs=kwargs: CropConfig(**kwargs), text)
    frame = np.full((8, 8, 3), 200, np.uint8)
    says(
        lambda: crop_frame(frame, np.array([4.0, 4.0, 2.0]), 4, pad="x"),
        "pad must be one of ['black', 'edge'], got 'x'",
    )
    says(lambda: crop_frame(frame, np.array([4.0, 4.0, 0.0]), 4), "invalid crop box [4. 4. 0.]")
    assert crop_frame(frame, np.array([4.0, 4.0, 0.5]), 4).shape == (4, 4, 3)  # a box under a pixel: upsampled
    rng = np.random.default_rng(7)
    t = 40
    landmarks = _synthetic_faces(t, rng, jitter=3.0)
    valid = np.ones(t, bool)
    for size in ((0, 5), (5, 0)):
        says(lambda size=size: compute_crop_boxes(landmarks, valid, size, CropConfig()), f"invalid image size {size}")
    assert compute_crop_boxes(landmarks, valid, (1, 1), CropConfig(smoothing="none")).shape == (t, 3)
    plain = compute_crop_boxes(landmarks, valid, (400, 300), CropConfig(smoothing="none", vertical_offset=0.0))
    cfg = CropConfig(
        smoothing="one_euro", vertical_offset=0.0, one_euro_min_cutoff=0.7, one_euro_beta=0.3, one_euro_d_cutoff=2.0
    )
    scale = float(np.median(plain[:, 2]))
    for fps in (30.0, 12.0):
        want = one_euro_filter(plain / scale, fps, 0.7, 0.3, 2.0) * scale
        got = compute_crop_boxes(landmarks, valid, (400, 300), cfg, **({} if fps == 30.0 else {"fps": fps}))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
