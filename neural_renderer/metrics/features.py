"""Cached metric features of one set of frames: Inception (FID), I3D (FVD), identity (CSIM), motion (expression,
pose and gaze distance). One HDF5 per set (`features` schema), so each set of frames is analysed exactly once, however
many metrics, methods or pairs use it; pixel metrics (L1, PSNR, SSIM, LPIPS) need both images and are not cached."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neural_renderer.errors import PipelineInputError
from neural_renderer.fitting.config import FitConfig, GazeConfig
from neural_renderer.metrics.config import MetricsConfig
from neural_renderer.progress import progress
from neural_renderer.storage import motion_feature_arrays, open_h5, read_attrs, read_stage, write_stage

log = logging.getLogger(__name__)

FEATURE_KEYS = (
    "inception",
    "i3d",
    "identity",
    "identity_valid",
    "expression",
    "rotation",
    "gaze_pitch_yaw_deg",
    "motion_valid",
)


@dataclass(frozen=True)
class MotionModels:
    """The files and settings the project's own tracker and fitter re-extract motion from frames with: the same as
    the video's fit and gaze stages (its `fit:` and `gaze:` sections), so re-extracted and tracked motion compare."""

    landmarker: str | Path
    morphable_model: str | Path
    correspondence: str | Path
    fit: FitConfig | None = None  # None: the fit stage's defaults (device resolved)
    gaze: GazeConfig = field(default_factory=GazeConfig)


def read_rendered(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """A `rendered` file -> frames (T, R, R, 3) uint8, frame_index (T,), attributes."""
    arrays = read_stage(path, "rendered")
    return arrays["frames"], arrays["frame_index"], read_attrs(path)


def read_test_split(model_pt: str | Path) -> np.ndarray:
    """The renderer's test frames (`test_idx`, indices into tracking.h5) as stored in its model.pt: the frames its
    self-reenactment renders, and the real frames every kind of output of that renderer is compared with."""
    from neural_renderer.torch_files import load_weights

    blob = load_weights(model_pt, "renderer model")
    if not isinstance(blob, dict) or "test_idx" not in blob:
        raise PipelineInputError(model_pt, "not a renderer model (no test_idx): retrain it")
    idx = np.asarray(blob["test_idx"].numpy(), np.int64)
    if len(idx) == 0:
        raise PipelineInputError(model_pt, "the renderer has no test frames (renderer.train.test_frames)")
    return idx


def read_tracking_frames(path: str | Path, frame_index: np.ndarray) -> tuple[np.ndarray, float]:
    """Frames at `frame_index` of a tracking.h5 (one chunk per frame, so this reads only those frames), and its fps."""
    idx = np.asarray(frame_index, np.int64)
    with open_h5(path) as f:
        if "frames" not in f:
            raise PipelineInputError(path, "not a tracking file: no /frames")
        n = f["frames"].shape[0]
        if len(idx) == 0 or idx.min() < 0 or idx.max() >= n:
            raise PipelineInputError(path, f"frame indices {idx[:1]}..{idx[-1:]} outside the video's {n} frames")
        unique, inverse = np.unique(idx, return_inverse=True)  # h5py wants increasing indices
        return f["frames"][unique][inverse], float(f.attrs.get("fps", 25.0))


class FeatureExtractor:
    """Holds the networks for one job (built on first use, so a job pays only for what it computes)."""

    def __init__(self, cfg: MetricsConfig, motion_models: MotionModels):
        from neural_renderer.device import exact_float32

        exact_float32()
        self.cfg = cfg
        self.motion_models = motion_models
        self._inception = self._i3d = self._identity = None

    @property
    def identity_backend(self) -> str:
        from neural_renderer.metrics.config import resolve_csim_backend

        return "arcface" if resolve_csim_backend(self.cfg) == "arcface" else "dlib_resnet_v1"

    def inception(self, frames: np.ndarray) -> np.ndarray:
        from neural_renderer.metrics.inception import InceptionFeatures

        if self._inception is None:
            self._inception = InceptionFeatures(self.cfg.device, self.cfg.weights.inception)
        return self._inception(frames, batch_size=self.cfg.batch_size)

    def i3d(self, frames: np.ndarray) -> np.ndarray:
        from neural_renderer.metrics.i3d import I3DFeatures

        if len(frames) < self.cfg.fvd_clip_len:  # too short for one clip: FVD is reported as n/a, not faked
            return np.zeros((0, 400), np.float32)
        if self._i3d is None:
            self._i3d = I3DFeatures(self.cfg.device, self.cfg.weights.i3d)
        return self._i3d(frames, clip_len=self.cfg.fvd_clip_len)

    def identity(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from neural_renderer.metrics.identity import make_embedder

        if self._identity is None:
            if self.identity_backend == "arcface":  # aligned with MediaPipe's 5 points (the project's tracker)
                self._identity = make_embedder(
                    "arcface",
                    self.cfg.arcface_model,
                    self.cfg.weights.dlib_dir,
                    landmarker_model=self.motion_models.landmarker,
                )
            else:
                self._identity = make_embedder("dlib", model_dir=self.cfg.weights.dlib_dir)
        return self._identity(frames)

    def motion(self, frames: np.ndarray, fps: float):
        from neural_renderer.metrics.motion import extract_motion

        m = self.motion_models
        return extract_motion(
            frames,
            fps,
            landmarker_model=m.landmarker,
            morphable_model=m.morphable_model,
            correspondence=m.correspondence,
            fit_cfg=m.fit,
            gaze_cfg=m.gaze,
        )

    def __call__(self, frames: np.ndarray, fps: float) -> dict[str, np.ndarray]:
        with progress(total=4, desc=f"metric features of {len(frames)} frames", unit="network") as bar:
            emb, emb_valid = self.identity(frames)
            bar.update()
            motion = self.motion(frames, fps)
            bar.update()
            inception = self.inception(frames)
            bar.update()
            i3d = self.i3d(frames)
            bar.update()
        return {
            "inception": np.asarray(inception, np.float32),
            "i3d": np.asarray(i3d, np.float32).reshape(-1, 400),
            "identity": np.asarray(emb, np.float32),
            "identity_valid": np.asarray(emb_valid, bool),
            **motion_feature_arrays(motion),
        }


def write_features(
    path: str | Path,
    arrays: dict[str, np.ndarray],
    frame_index: np.ndarray,
    *,
    source: str,
    name: str,
    source_path: str | Path,
    source_sha256: str,
    cfg: MetricsConfig,
    identity_backend: str,
) -> None:
    write_stage(
        path,
        "features",
        {**arrays, "frame_index": np.asarray(frame_index, np.int64)},
        video=name,
        source_path=str(source_path),
        source_sha256=source_sha256,
        stage_config=dataclasses.asdict(cfg),
        attrs={"source": source, "identity_backend": identity_backend, "clip_len": cfg.fvd_clip_len},
    )


def read_features(path: str | Path) -> dict[str, np.ndarray]:
    arrays = read_stage(path, "features")
    arrays["identity_backend"] = read_attrs(path)["identity_backend"]
    return arrays
