"""Cross-identity reenactment (neural_renderer.reenact, stages/reenact.py): the transfer maths on synthetic motion,
then end to end on real tracking files built here with the project's own stages (d6 = target, d0 = driver) and a
tiny renderer trained on CPU.

`build_tracking` and `TINY_RENDERER` are shared with tests/test_audio.py (a per-session cache builds each clip once).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from neural_renderer.errors import PipelineInputError
from neural_renderer.fitting.camera import FLIP_YZ
from neural_renderer.reenact import ReenactConfig
from neural_renderer.reenact.transfer import (
    check_expression_names,
    motion_stats,
    project_to_rotation,
    rotation_mean,
    smooth_rotations,
    transfer_expression,
    transfer_motion,
    transfer_translation,
)
from neural_renderer.renderer.data import pose_features
from neural_renderer.renderer.render import PortraitRenderer
from neural_renderer.stages import assemble, correspondence, crop, fit, gaze, ingest, reenact, track, train_renderer
from neural_renderer.storage import Motion, read_attrs, read_driving_motion, read_stage, validate_arrays
from neural_renderer.video import iter_frames, probe_video, resolve_ffmpeg

pytestmark = pytest.mark.slow

TINY_RENDERER = {
    "preset": "seed",  # the paper's architecture at a tiny size, at the crop resolution
    "model": {
        "width": 16,
        "feature_dim": 4,
        "pixel_freqs": 3,
        "pose_freqs": 2,
        "gaze_freqs": 2,
        "latent_dim": 4,
        "decoder_channels": 8,
        "decoder_res_blocks": 1,
    },
    "train": {
        "iterations": 4,
        "batch_size": 2,
        "checkpoint_every": 2,
        "disc_channels": 4,
        "disc_layers": 2,
        "disc_scales": 1,
        "device": "cpu",
        "min_train_frames": 8,
        "log_every": 0,
        "sample_every": 0,
        "progress": False,
        "w_perceptual": 0.0,
    },
    "render": {"device": "cpu"},
}
D6_FRAMES = 600  # 20 s of d6 (30 fps, with speech): enough for the audio tests, ~25 s to track and fit on 2 cores

_BUILT: dict[tuple[str, int], dict[str, Path]] = {}


def cut_with_audio(src: Path, dst: Path, frames: int) -> None:
    """The first `frames` frames, re-encoded, keeping the audio (if any) up to the same time."""
    subprocess.run(
        [
            resolve_ffmpeg(),
            "-v",
            "error",
            "-y",
            "-i",
            str(src),
            "-frames:v",
            str(frames),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(dst),
        ],
        check=True,
    )


def build_tracking(src: Path, root: Path, frames: int, shared: Path, resolution: int = 256) -> dict[str, Path]:
    """ingest -> track -> crop -> correspondence -> fit -> gaze -> assemble on a cut clip, at `resolution`."""
    key = (str(src), frames)
    if key in _BUILT and _BUILT[key]["tracking"].is_file():
        return _BUILT[key]
    work = root / f"{src.stem}_{frames}"
    work.mkdir(parents=True, exist_ok=True)
    landmarker, ict = shared / "models" / "face_landmarker.task", shared / "models" / "ict_face_light_face.npz"
    video = work / f"{src.stem}.mp4"
    cut_with_audio(src, video, frames)
    ingest.run(video, work / "probe.json", work / "audio.wav")
    track.run(video, work / "probe.json", landmarker, work / "track.h5", video=src.stem, cfg={})
    crop.run(work / "track.h5", work / "crop.h5", cfg={"resolution": resolution})
    correspondence.run(ict, landmarker, work / "correspondence.npz")
    fit.run(
        work / "crop.h5", work / "track.h5", ict, work / "correspondence.npz", work / "fit.h5", cfg={"device": "cpu"}
    )
    gaze.run(work / "crop.h5", work / "fit.h5", ict, work / "gaze.h5", cfg={})
    assemble.run(
        video,
        work / "probe.json",
        {s: work / f"{s}.h5" for s in ("track", "crop", "fit", "gaze")},
        work / "tracking.h5",
    )
    _BUILT[key] = {
        "video": video,
        "probe": work / "probe.json",
        "audio": work / "audio.wav",
        "tracking": work / "tracking.h5",
        "dir": work,
    }
    return _BUILT[key]


def train_tiny_renderer(paths: dict[str, Path]) -> Path:
    model = paths["dir"] / "renderer" / "model.pt"
    if not model.is_file():
        train_renderer.run(paths["tracking"], model, cfg=TINY_RENDERER)
    return model


# ---------------------------------------------------------------- transfer maths (synthetic motion)


def synthetic_motion(
    seed: int, n: int = 120, base_deg=(0.0, 0.0, 0.0), depth: float = 60.0, noise: float = 0.0
) -> Motion:
    """Smooth head motion about a base head rotation, expression and gaze; optional white jitter."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    angles = (
        np.stack([8 * np.sin(t / 11 + k) for k in range(3)], 1)
        + np.asarray(base_deg)[None]
        + noise * rng.normal(0, 1, (n, 3))
    )
    r_head = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    rotation = FLIP_YZ[None] @ r_head
    translation = np.stack([np.sin(t / 7), 0.5 * np.cos(t / 5), depth + np.sin(t / 13)], 1) + noise * 0.1 * rng.normal(
        0, 1, (n, 3)
    )
    expression = np.clip(
        0.3 + 0.25 * np.sin(t[:, None] / 6 + np.arange(5)[None]) + noise * 0.02 * rng.normal(0, 1, (n, 5)), 0, 1
    ).astype(np.float32)
    gaze = np.stack([5 * np.sin(t / 9), 3 * np.cos(t / 4)], 1) + rng.normal(0, 0.01, (n, 2))
    names = ["jawOpen", "mouthSmile_L", "mouthSmile_R", "eyeBlink_L", "eyeBlink_R"]
    return Motion(expression, tuple(names), rotation, translation, gaze, np.ones(n, bool), np.arange(n) / 25.0, 25.0)


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(Rotation.from_matrix(np.swapaxes(a, -1, -2) @ b).magnitude())


def test_rotation_mean_matches_the_svd_projection_of_the_arithmetic_mean():
    # Chordal L2 mean = argmin sum ||R_i - M||_F^2 = the rotation nearest (Procrustes) to the arithmetic mean matrix.
    rng = np.random.default_rng(3)
    base = Rotation.from_euler("xyz", [170, -20, 35], degrees=True)
    rots = (base * Rotation.from_rotvec(rng.normal(0, 0.4, (50, 3)))).as_matrix()
    u, _, vt = np.linalg.svd(rots.mean(0))
    expected = u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt
    got = rotation_mean(rots)
    assert np.allclose(got, expected, atol=1e-9)
    assert angle_deg(got, base.as_matrix()) < 10  # near the base, not some degenerate answer
    assert np.allclose(got @ got.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(got), 1.0)
    # weights: all weight on one rotation gives that rotation
    w = np.zeros(50)
    w[7] = 1
    assert np.allclose(rotation_mean(rots, w), rots[7], atol=1e-9)


def test_transferring_a_video_onto_itself_gives_it_back():
    m = synthetic_motion(0)
    s = motion_stats(m)
    out = transfer_motion(m, s, s, expression="relative", pose="relative", gaze="relative")
    assert np.allclose(out.expression, m.expression, atol=1e-6)
    assert angle_deg(out.rotation, m.rotation).max() < 1e-6
    assert np.allclose(out.translation, m.translation, atol=1e-9)
    assert np.allclose(out.gaze_deg, m.gaze_deg, atol=1e-9)


def test_relative_pose_keeps_the_target_mean_pose_and_the_driver_motion():
    driver = synthetic_motion(1, base_deg=(10, 25, -5), depth=50.0)
    target = synthetic_motion(2, base_deg=(-15, -30, 8), depth=100.0)
    ds, ts = motion_stats(driver), motion_stats(target)
    assert angle_deg(ds.rotation, ts.rotation) > 30  # the two identities really sit differently
    out = transfer_motion(driver, ds, ts)
    assert angle_deg(rotation_mean(out.rotation), ts.rotation) < 1e-6
    assert np.allclose(out.translation.mean(0), ts.translation, atol=1e-9)
    assert np.allclose(out.gaze_deg.mean(0), ts.gaze_deg, atol=1e-9)
    # the driver's rotation away from its mean is preserved frame by frame (angle of the relative rotation)
    assert np.allclose(
        angle_deg(out.rotation, np.broadcast_to(ts.rotation, out.rotation.shape)),
        angle_deg(driver.rotation, np.broadcast_to(ds.rotation, driver.rotation.shape)),
        atol=1e-6,
    )
    # absolute pose keeps the driver's own pose instead
    absolute = transfer_motion(driver, ds, ts, pose="absolute")
    assert angle_deg(rotation_mean(absolute.rotation), ds.rotation) < 1e-6


def test_translation_displacement_scales_with_the_depth_ratio():
    t_drv = np.array([[1.0, 2.0, 63.0], [-1.0, 0.0, 57.0]])
    out = transfer_translation(t_drv, np.array([0.0, 1.0, 60.0]), np.array([5.0, 5.0, 120.0]))
    assert np.allclose(out, [[7.0, 7.0, 126.0], [3.0, 3.0, 114.0]])


def test_relative_expression_swaps_the_neutral_offsets():
    e = np.array([[0.2, 0.9, 0.0], [0.5, 0.3, 1.0]])
    out = transfer_expression(
        e, drv_neutral=np.array([0.2, 0.1, 0.0]), tgt_neutral=np.array([0.0, 0.3, 0.1]), mode="relative"
    )
    assert np.allclose(out, [[0.0, 1.0, 0.1], [0.3, 0.5, 1.0]])  # clipped to [0, 1]
    assert np.allclose(transfer_expression(e, mode="absolute"), e)
    # the neutral is a low percentile: a talking mouth (open half the time) has its rest value at 0, not the median
    jaw = np.r_[np.zeros(40), np.linspace(0.2, 0.8, 60)]
    m = Motion(
        jaw[:, None].astype(np.float32),
        ("jawOpen",),
        np.repeat(FLIP_YZ[None], 100, 0),
        np.tile([0, 0, 60.0], (100, 1)),
        np.zeros((100, 2)),
        np.ones(100, bool),
        np.arange(100) / 25.0,
        25.0,
    )
    assert motion_stats(m).neutral_expression[0] == 0.0 and np.median(jaw) > 0.1


def test_smoothing_reduces_frame_to_frame_jitter():
    m = synthetic_motion(4, noise=2.0)
    s = motion_stats(m)
    raw = transfer_motion(m, s, s)
    smooth = transfer_motion(m, s, s, smoothing_sigma=2.0)

    def jitter(x):
        return np.abs(np.diff(x, axis=0)).mean()

    assert jitter(smooth.expression) < 0.5 * jitter(raw.expression)
    assert jitter(smooth.translation) < 0.5 * jitter(raw.translation)
    assert jitter(smooth.gaze_deg) < jitter(raw.gaze_deg)
    rot_step = lambda r: angle_deg(r[:-1], r[1:]).mean()  # noqa: E731
    assert rot_step(smooth.rotation) < 0.5 * rot_step(raw.rotation)
    assert np.allclose(smooth.rotation @ np.swapaxes(smooth.rotation, 1, 2), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(smooth.rotation), 1.0)
    # smoothing keeps the motion (no collapse to the mean): mean deviation stays within a few degrees of the raw one
    assert angle_deg(smooth.rotation, m.rotation).mean() < 4
    assert np.allclose(smooth_rotations(m.rotation, 0), m.rotation)


def test_projection_to_rotation_fixes_reflections():
    m = np.diag([1.0, 1.0, -1.0]) * 1.3
    r = project_to_rotation(m)
    assert np.isclose(np.linalg.det(r), 1.0) and np.allclose(r @ r.T, np.eye(3))


def test_expression_name_check():
    names = ["jawOpen", "mouthSmile_L"]
    assert check_expression_names(names, list(names)) is None
    assert "differ" in check_expression_names(names, ["jawOpen", "mouthSmile_R"])
    assert "2 expression coefficients, target 3" in check_expression_names(names, names + ["x"])


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="expression must be one of"):
        ReenactConfig(expression="copy")
    with pytest.raises(PipelineInputError, match="unknown ReenactConfig option"):
        reenact.run("a", "b", "c", "d", "e", cfg={"smoothing": 1}, driver="x", target="y")


# ---------------------------------------------------------------- end to end on real videos


@pytest.fixture(scope="module")
def identities(tmp_path_factory, shared_dir, videos_dir):
    root = tmp_path_factory.mktemp("identities")
    d6 = build_tracking(videos_dir / "d6.mp4", root, D6_FRAMES, shared_dir)
    d0 = build_tracking(videos_dir / "d0.mp4", root, 78, shared_dir)
    d6["model"] = train_tiny_renderer(d6)
    return d0, d6


@pytest.fixture(scope="module")
def cross(identities, tmp_path_factory):
    d0, d6 = identities
    out = tmp_path_factory.mktemp("cross")
    frames = reenact.run(
        d0["tracking"],
        d6["tracking"],
        d6["model"],
        out / "d0_to_d6.mp4",
        out / "d0_to_d6.h5",
        cfg={"device": "cpu", "smoothing_sigma": 1.0},
        driver="d0",
        target="d6",
        driver_video=d0["video"],
        driver_probe=d0["probe"],
    )
    return out, frames, d0


def test_cross_reenactment_renders_every_driver_frame(cross):
    out, frames, d0 = cross
    assert frames.shape == (78, 256, 256, 3) and frames.dtype == np.uint8
    arrays = read_stage(out / "d0_to_d6.h5", "rendered")
    validate_arrays("rendered", arrays)
    assert np.array_equal(arrays["frames"], frames)
    assert np.array_equal(arrays["frame_index"], np.arange(78))
    attrs = read_attrs(out / "d0_to_d6.h5")
    assert (attrs["kind"], attrs["driver"], attrs["target"], attrs["stage"]) == ("cross", "d0", "d6", "rendered")
    assert attrs["fps"] == 25.0 and attrs["resolution"] == 256 and len(attrs["source_sha256"]) == 64
    info = probe_video(out / "d0_to_d6.mp4")
    assert (info.width, info.height, info.fps, info.has_audio) == (
        512,
        256,
        25.0,
        False,
    )  # driver | reenacted; d0 has no audio
    decoded = np.stack(list(iter_frames(out / "d0_to_d6.mp4", info))).astype(float)
    assert len(decoded) == 78
    # left half: the driver's crop; right half: the reenactment (the tiny renderer's output is high-frequency noise
    # that H.264 4:2:0 cannot keep, so compare 16 x 16 block means; the wrong frames would be several times off)
    with h5py.File(d0["tracking"]) as f:
        driver_crops = f["frames"][()].astype(float)
    assert np.abs(decoded[:, :, :256] - driver_crops).mean() < 4
    blocks = lambda a: a.reshape(len(a), 16, 16, 16, 16, 3).mean((2, 4))  # noqa: E731
    assert np.abs(blocks(decoded[:, :, 256:]) - blocks(frames.astype(float))).mean() < 3
    assert np.abs(blocks(decoded[:, :, 256:]) - blocks(np.roll(frames, 20, 0).astype(float))).mean() > 3
    assert not list(out.glob(".*.tmp-*"))


def test_reenacting_a_video_onto_itself_renders_its_own_parameters(identities, tmp_path):
    """d6 driving d6 (relative pose and expression): the frames equal the renderer's output for d6's own tracking."""
    _, d6 = identities
    frames = reenact.run(
        d6["tracking"],
        d6["tracking"],
        d6["model"],
        tmp_path / "self.mp4",
        tmp_path / "self.h5",
        cfg={"device": "cpu", "max_frames": 20, "side_by_side": False},
        driver="d6",
        target="d6",
        driver_video=d6["video"],
        driver_probe=d6["probe"],
    )
    assert frames.shape == (20, 256, 256, 3)
    m = read_driving_motion(d6["tracking"])
    renderer = PortraitRenderer(d6["model"], "cpu")
    direct = renderer.render_batch(
        pose_features(m.rotation[:20], m.translation[:20].astype(np.float32)),
        np.deg2rad(m.gaze_deg[:20]).astype(np.float32),
        m.expression[:20],
    )
    assert np.abs(frames.astype(int) - direct).mean() < 0.05
    info = probe_video(tmp_path / "self.mp4")
    assert (info.width, info.height, info.has_audio) == (256, 256, True)  # d6 has speech: muxed in
    assert len(list(iter_frames(tmp_path / "self.mp4", info))) == 20


def test_mismatched_expression_names_fail_without_outputs(identities, tmp_path):
    d0, d6 = identities
    bad = tmp_path / "driver.h5"
    shutil.copy(d0["tracking"], bad)
    with h5py.File(bad, "r+") as f:
        names = list(f["fit/expression_names"].asstr()[()])
        names[0], names[1] = names[1], names[0]
        del f["fit/expression_names"]
        f.create_dataset("fit/expression_names", data=np.asarray(names, object), dtype=h5py.string_dtype())
    with pytest.raises(PipelineInputError, match="expression names differ"):
        reenact.run(
            bad,
            d6["tracking"],
            d6["model"],
            tmp_path / "o.mp4",
            tmp_path / "o.h5",
            cfg={"device": "cpu"},
            driver="d0",
            target="d6",
        )
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))


def test_missing_model_fails_without_outputs(identities, tmp_path):
    d0, d6 = identities
    with pytest.raises(PipelineInputError, match="model.pt: target renderer model not found"):
        reenact.run(
            d0["tracking"],
            d6["tracking"],
            tmp_path / "model.pt",
            tmp_path / "o.mp4",
            tmp_path / "o.h5",
            cfg={"device": "cpu"},
            driver="d0",
            target="d6",
        )
    with pytest.raises(PipelineInputError, match="tracking file not found"):
        reenact.run(
            tmp_path / "nope.h5",
            d6["tracking"],
            d6["model"],
            tmp_path / "o.mp4",
            tmp_path / "o.h5",
            cfg={},
            driver="d0",
            target="d6",
        )
    assert not list(tmp_path.glob("o.*"))
