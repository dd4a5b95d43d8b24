"""MediaPipe FaceLandmarker tracking on a real video (d0, 78 frames): detections, geometry, index conventions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neural_renderer.config import build_dataclass
from neural_renderer.errors import PipelineInputError
from neural_renderer.tracking import (
    BLENDSHAPE_NAMES,
    LEFT_EYE_CORNERS,
    LEFT_IRIS,
    LEFT_IRIS_CENTER,
    N_LANDMARKS,
    RIGHT_EYE_CORNERS,
    RIGHT_IRIS,
    RIGHT_IRIS_CENTER,
    LandmarkTrack,
    TrackConfig,
    frame_timestamp_ms,
    track_frames,
)
from neural_renderer.video import iter_frames, probe_video


@pytest.fixture(scope="module")
def d0(videos_dir):
    info = probe_video(videos_dir / "d0.mp4")
    return info, list(iter_frames(info.path, info))


@pytest.fixture(scope="module")
def d0_track(d0, landmarker_model) -> LandmarkTrack:
    info, frames = d0
    return track_frames(frames, info.fps, landmarker_model)


def test_d0_detections_and_shapes(d0, d0_track):
    info, frames = d0
    t = len(frames)
    assert d0_track.n_frames == t == 78
    assert d0_track.detection_rate > 0.95
    assert d0_track.landmarks.shape == (t, N_LANDMARKS, 3) and d0_track.landmarks.dtype == np.float32
    assert d0_track.blendshapes.shape == (t, 52) and d0_track.blendshapes.dtype == np.float32
    assert d0_track.transforms.shape == (t, 4, 4) and d0_track.transforms.dtype == np.float32
    assert d0_track.valid.dtype == bool
    assert d0_track.blendshape_names == list(BLENDSHAPE_NAMES)


def test_d0_landmarks_are_pixels_inside_the_image(d0, d0_track):
    info, _ = d0
    lm = d0_track.landmarks[d0_track.valid]
    assert np.isfinite(lm).all()
    assert (lm[..., 0] >= 0).all() and (lm[..., 0] <= info.width).all()
    assert (lm[..., 1] >= 0).all() and (lm[..., 1] <= info.height).all()
    # pixels, not normalised [0, 1]: the face spans a good part of the 512 px frame
    extent = lm[..., :2].max(axis=1) - lm[..., :2].min(axis=1)
    assert (extent > 100).all()
    # z is in the same pixel scale: depth range of a face is a fraction of its width, not ~0.1
    z_range = lm[..., 2].max(axis=1) - lm[..., 2].min(axis=1)
    assert (z_range > 0.2 * extent[:, 0]).all() and (z_range < 2 * extent[:, 0]).all()


def test_d0_blendshapes_and_transforms(d0_track):
    bs = d0_track.blendshapes[d0_track.valid]
    assert ((bs >= 0) & (bs <= 1)).all()
    m = d0_track.transforms[d0_track.valid].astype(np.float64)
    np.testing.assert_allclose(m[:, 3], np.tile([0, 0, 0, 1], (len(m), 1)), atol=1e-6)
    rot = m[:, :3, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.tile(np.eye(3), (len(m), 1, 1)), atol=1e-3)
    assert (m[:, 2, 3] < 0).all()  # the face is in front of MediaPipe's camera (looking down -z)


def test_iris_constants_match_the_image(d0_track):
    """Subject's right iris (468-472) is on the image's left in this non-mirrored frontal video, in the right eye."""
    lm = d0_track.landmarks[d0_track.valid]
    assert RIGHT_IRIS == tuple(range(468, 473)) and LEFT_IRIS == tuple(range(473, 478))
    assert (lm[:, RIGHT_IRIS_CENTER, 0] < lm[:, LEFT_IRIS_CENTER, 0]).all()
    for centre, iris, corners in (
        (RIGHT_IRIS_CENTER, RIGHT_IRIS, RIGHT_EYE_CORNERS),
        (LEFT_IRIS_CENTER, LEFT_IRIS, LEFT_EYE_CORNERS),
    ):
        cx = lm[:, centre, 0]
        lo = lm[:, list(corners), 0].min(axis=1)
        hi = lm[:, list(corners), 0].max(axis=1)
        assert ((cx > lo) & (cx < hi)).all()
        # the first index is the centre of the 4 contour points
        contour_mean = lm[:, list(iris[1:]), :2].mean(axis=1)
        assert np.linalg.norm(contour_mean - lm[:, centre, :2], axis=1).max() < 2.0


def test_frames_without_a_face(d0, landmarker_model):
    info, frames = d0
    rng = np.random.default_rng(0)
    black = np.zeros_like(frames[0])
    noise = rng.integers(0, 256, frames[0].shape, dtype=np.uint8)
    seq = frames[:6] + [black, noise] + frames[6:9]
    track = track_frames(seq, info.fps, landmarker_model)
    assert track.valid.tolist() == [True] * 6 + [False, False] + [True] * 3
    for array in (track.landmarks, track.blendshapes, track.transforms):
        assert np.isnan(array[6:8]).all()
        assert np.isfinite(array[track.valid]).all()
    assert track.detection_rate == pytest.approx(9 / 11)


def test_tracks_straight_from_the_decoder(videos_dir, landmarker_model):
    info = probe_video(videos_dir / "d18.mp4")
    track = track_frames(itertools.islice(iter_frames(info.path, info), 20), info.fps, landmarker_model)
    assert track.n_frames == 20 and track.valid.all()
    assert np.nanmax(track.landmarks[..., 0]) <= info.width


def test_empty_input_and_bad_frames(landmarker_model, tmp_path):
    empty = track_frames([], 25.0, landmarker_model)
    assert empty.n_frames == 0 and empty.detection_rate == 0.0
    assert empty.landmarks.shape == (0, N_LANDMARKS, 3)
    with pytest.raises(ValueError, match="differs from the first frame"):
        track_frames([np.zeros((64, 64, 3), np.uint8), np.zeros((32, 64, 3), np.uint8)], 25.0, landmarker_model)
    with pytest.raises(ValueError, match="RGB uint8"):
        track_frames([np.zeros((64, 64, 3), np.float32)], 25.0, landmarker_model)
    with pytest.raises(PipelineInputError, match="model file not found"):
        track_frames([], 25.0, tmp_path / "missing.task")
    broken = tmp_path / "broken.task"
    broken.write_bytes(b"not a model")
    with pytest.raises(PipelineInputError, match="cannot load"):
        track_frames([np.zeros((64, 64, 3), np.uint8)], 25.0, broken)


@pytest.mark.parametrize("fps", [25.0, 30000 / 1001, 59.94, 2000.0, 0.5])
def test_timestamps_strictly_increase(fps):
    ts, prev = [], None
    for i in range(500):
        prev = frame_timestamp_ms(i, fps, prev)
        ts.append(prev)
    assert ts[0] == 0 and all(b > a for a, b in zip(ts, ts[1:]))
    if fps <= 1000:  # exact rounding of i / fps while ms resolution allows it
        assert ts == [round(i * 1000 / fps) for i in range(500)]


def test_landmark_track_validates_shapes():
    t = 3
    ok = dict(
        landmarks=np.zeros((t, N_LANDMARKS, 3), np.float32),
        blendshapes=np.zeros((t, 52), np.float32),
        blendshape_names=list(BLENDSHAPE_NAMES),
        transforms=np.zeros((t, 4, 4), np.float32),
        valid=np.array([True, False, True]),
    )
    assert LandmarkTrack(**ok).detection_rate == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="landmarks"):
        LandmarkTrack(**{**ok, "landmarks": np.zeros((t, 468, 3), np.float32)})


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory, videos_dir):
    """d0 (512 px, large face) beside d18 shrunk to 384 px, then black: the smaller face is nearer the image centre.

    (MediaPipe's short-range detector misses faces much smaller than this in a frame this wide.)"""
    import subprocess

    from neural_renderer.video import resolve_ffmpeg

    path = tmp_path_factory.mktemp("faces") / "two_faces.mp4"
    graph = "[1:v]fps=25,scale=384:384,pad=384:512:0:64[s];[0:v][s]hstack=inputs=2,pad=1280:512:0:0[v]"
    subprocess.run(
        [resolve_ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(videos_dir / "d0.mp4"),
         "-i", str(videos_dir / "d18.mp4"), "-filter_complex", graph, "-map", "[v]", "-frames:v", "12",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    info = probe_video(path)
    return info, list(iter_frames(path, info))


@pytest.mark.parametrize("face, x_range", [("largest", (0, 512)), ("centre", (512, 896))])
def test_two_faces_warn_and_track_the_chosen_one_in_every_frame(two_faces, landmarker_model, face, x_range, caplog):
    info, frames = two_faces
    assert (info.width, info.height, info.n_frames) == (1280, 512, 12)
    with caplog.at_level("WARNING", logger="neural_renderer.tracking.landmarker"):
        track = track_frames(frames, info.fps, landmarker_model, TrackConfig(face=face))
    assert "2 faces found" in caplog.text and f"tracking the {face} one" in caplog.text
    assert track.n_faces.max() == 2 and track.detection_rate == 1.0
    x = track.landmarks[..., 0]
    assert (x >= x_range[0]).all() and (x < x_range[1]).all()  # the same person in every frame


def test_an_iterator_cannot_be_tracked_twice_so_the_single_face_pass_is_kept(two_faces, landmarker_model, caplog):
    info, frames = two_faces
    with caplog.at_level("WARNING", logger="neural_renderer.tracking.landmarker"):
        track = track_frames(iter(frames), info.fps, landmarker_model, TrackConfig(face="centre"))
    assert "frames cannot be read twice" in caplog.text and track.n_frames == 12 and track.valid.any()


def test_unknown_face_rule_is_rejected():
    with pytest.raises(PipelineInputError, match="invalid TrackConfig: face must be one of"):
        build_dataclass(TrackConfig, {"face": "left"})
