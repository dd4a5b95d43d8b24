"""tracking.h5 -> device-resident uint8 frames + per-frame conditioning; train/test split by frame index."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from neural_renderer.errors import PipelineInputError
from neural_renderer.fitting.camera import camera_to_head_rotation

log = logging.getLogger(__name__)

REQUIRED = ("frames", "fit/expression", "fit/rotation", "fit/translation", "gaze/head_pitch_yaw_deg")


@dataclass
class Conditioning:
    """Per-frame network inputs (float32, CPU or device): pose (T, 9), gaze (T, 2) rad, expression (T, Ke)."""

    pose: torch.Tensor
    gaze: torch.Tensor
    expression: torch.Tensor

    def to(self, device: torch.device | str) -> "Conditioning":
        return Conditioning(self.pose.to(device), self.gaze.to(device), self.expression.to(device))

    def index(self, idx: torch.Tensor) -> "Conditioning":
        return Conditioning(self.pose[idx], self.gaze[idx], self.expression[idx])


def pose_features(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(T,3,3) model->camera rotation, (T,3) translation -> (T, 9): 6D of the head rotation relative to frontal
    (axis-angle of the full rotation sits near pi for a frontal face, which wraps), then the translation."""
    r_head = camera_to_head_rotation(torch.as_tensor(rotation, dtype=torch.float64)).numpy()
    six = r_head[:, :, :2].transpose(0, 2, 1).reshape(-1, 6)
    return np.concatenate([six, translation], axis=1).astype(np.float32)


@dataclass
class TrackingData:
    path: Path
    frames: np.ndarray  # (T, R, R, 3) uint8 (all frames, host memory)
    pose: np.ndarray
    gaze_rad: np.ndarray
    expression: np.ndarray
    valid: np.ndarray  # (T,) bool
    fps: float
    train_idx: np.ndarray
    test_idx: np.ndarray

    @property
    def resolution(self) -> int:
        return int(self.frames.shape[1])

    def conditioning(self, idx: np.ndarray, norm: dict[str, np.ndarray]) -> Conditioning:
        pose = (self.pose[idx] - norm["pose_mean"]) / norm["pose_std"]
        return Conditioning(torch.from_numpy(pose), torch.from_numpy(self.gaze_rad[idx]), torch.from_numpy(self.expression[idx]))

    def normalisation(self) -> dict[str, np.ndarray]:
        """Standardise the pose's translation over the training frames (the 6D rotation is already O(1))."""
        pose = self.pose[self.train_idx]
        mean = np.zeros(9, np.float32)
        std = np.ones(9, np.float32)
        mean[6:] = pose[:, 6:].mean(0)
        std[6:] = np.maximum(pose[:, 6:].std(0), 1e-3)
        return {"pose_mean": mean, "pose_std": std}


def split_counts(n_frames: int, train: float, test: float) -> tuple[int, int]:
    n_train = int(round(train * n_frames)) if train < 1 else int(train)
    n_test = int(round(test * n_frames)) if test < 1 else int(test)
    n_test = max(n_test, 1)
    if n_train + n_test > n_frames:
        raise PipelineInputError(None, f"train_frames ({n_train}) + test_frames ({n_test}) exceed the video's {n_frames} frames")
    return n_train, n_test


@dataclass
class TrackingParams:
    """The per-frame parameters of a tracking.h5 (no pixels), as stored; `valid` = tracked in every stage and finite."""

    expression: np.ndarray  # (T, Ke) float32
    expression_names: list[str]
    rotation: np.ndarray  # (T, 3, 3) float64 model -> camera
    translation: np.ndarray  # (T, 3) float64
    gaze_deg: np.ndarray  # (T, 2) float64 pitch, yaw relative to the head
    valid: np.ndarray  # (T,) bool
    fps: float


def read_tracking_params(path: str | Path, required: tuple[str, ...] = REQUIRED) -> TrackingParams:
    """The one reader of tracking.h5's conditioning (renderer, reenactment, audio); PipelineInputError names the file."""
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(path, "tracking file not found")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in required if k not in f]
            if missing:
                raise PipelineInputError(path, f"not a tracking file: missing {missing}")
            expression = np.asarray(f["fit/expression"][()], np.float32)
            names = [str(n) for n in f["fit/expression_names"].asstr()[()]] if "fit/expression_names" in f else []
            rotation = np.asarray(f["fit/rotation"][()], np.float64)
            translation = np.asarray(f["fit/translation"][()], np.float64)
            gaze = np.asarray(f["gaze/head_pitch_yaw_deg"][()], np.float64)
            valid = np.ones(len(expression), bool)
            for key in ("fit/valid", "gaze/valid", "track/valid"):
                if key in f:
                    valid &= np.asarray(f[key][()], bool)
            fps = float(f.attrs.get("fps", 25.0))
    except PipelineInputError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise PipelineInputError(path, f"cannot read tracking file ({exc})") from None
    t = len(expression)
    for name, arr in (("rotation", rotation), ("translation", translation), ("gaze", gaze), ("valid flags", valid)):
        if len(arr) != t:
            raise PipelineInputError(path, f"{name} has {len(arr)} frames, expression has {t}")
    valid &= np.isfinite(expression).all(1) & np.isfinite(rotation).all((1, 2)) & np.isfinite(translation).all(1) & np.isfinite(gaze).all(1)
    return TrackingParams(expression, names, rotation, translation, gaze, valid, fps)


def load_tracking(path: str | Path, train_frames: float = 0.9, test_frames: float = 0.1, min_train_frames: int = 16) -> TrackingData:
    """Read everything the renderer needs; bad files fail with PipelineInputError naming the file and reason."""
    params = read_tracking_params(path)
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            frames = f["frames"][()]
    except (OSError, KeyError, ValueError) as exc:
        raise PipelineInputError(path, f"cannot read tracking file ({exc})") from None
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[1] != frames.shape[2]:
        raise PipelineInputError(path, f"frames must be (T, R, R, 3) uint8, got {frames.shape} {frames.dtype}")
    t, res = frames.shape[0], frames.shape[1]
    if res % 4:
        raise PipelineInputError(path, f"crop resolution {res} is not divisible by 4 (the MLP grid is H/4)")
    if len(params.expression) != t:
        raise PipelineInputError(path, f"expression has {len(params.expression)} frames, frames has {t}")
    valid = params.valid
    try:
        n_train, n_test = split_counts(t, train_frames, test_frames)
    except PipelineInputError as exc:
        raise PipelineInputError(path, exc.reason) from None
    train_idx = np.flatnonzero(valid[:n_train])
    test_idx = np.arange(t - n_test, t)
    if len(train_idx) < min_train_frames:
        raise PipelineInputError(path, f"too few valid training frames: {len(train_idx)} < min_train_frames {min_train_frames}")
    # non-finite test conditioning (should not happen: stages interpolate) -> zeros rather than NaN in the network
    pose = pose_features(np.nan_to_num(params.rotation), np.nan_to_num(params.translation).astype(np.float32))
    gaze = np.deg2rad(np.nan_to_num(params.gaze_deg)).astype(np.float32)
    return TrackingData(path, frames, pose, gaze, np.nan_to_num(params.expression), valid, params.fps, train_idx, test_idx)


class FrameCache:
    """The training crops as one uint8 tensor, on the GPU when it fits (else pinned host memory): no disk I/O per step."""

    def __init__(self, frames: np.ndarray, device: torch.device, mode: str = "auto", headroom: float = 0.5):
        tensor = torch.from_numpy(np.ascontiguousarray(frames))
        self.device = device
        on_gpu = False
        if device.type == "cuda" and mode != "host":
            free, _ = torch.cuda.mem_get_info(device)
            on_gpu = mode == "gpu" or tensor.numel() < headroom * free
            if not on_gpu:
                log.warning("training frames (%.1f GiB) do not fit in half the free GPU memory: kept in pinned host memory", tensor.numel() / 2**30)
        if on_gpu:
            self.frames = tensor.to(device)
        else:
            self.frames = tensor.pin_memory() if device.type == "cuda" else tensor
        self.on_device = on_gpu or device.type == "cpu"

    def batch(self, idx: torch.Tensor, channels_last: bool) -> torch.Tensor:
        """(B,) indices -> (B, 3, R, R) float in [-1, 1] on the device."""
        x = self.frames[idx.to(self.frames.device)].to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
