"""tracking.h5 -> uint8 frames (in memory, or streamed from a frame cache) + per-frame conditioning; train/test
split by frame index.

The motion comes from `storage.read_motion` and the pixels from `renderer.frames` (in memory up to
`renderer.train.frames_in_memory_mb`, else an uncompressed cache file read by rows): this module reads no file
itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neural_renderer.errors import PipelineInputError
from neural_renderer.fitting.camera import camera_to_head_rotation
from neural_renderer.renderer.frames import FrameFile, StreamingBatches, frames_at, to_device_blockwise
from neural_renderer.storage import frames_shape, read_datasets, read_motion

log = logging.getLogger(__name__)


@dataclass
class Conditioning:
    """Per-frame network inputs (float32, CPU or device), standardised over the training frames: pose (T, 9),
    gaze (T, 2), expression (T, Ke)."""

    pose: torch.Tensor
    gaze: torch.Tensor
    expression: torch.Tensor

    def to(self, device: torch.device | str) -> Conditioning:
        return Conditioning(self.pose.to(device), self.gaze.to(device), self.expression.to(device))

    def index(self, idx: torch.Tensor) -> Conditioning:
        return Conditioning(self.pose[idx], self.gaze[idx], self.expression[idx])

    def jitter(self, std: float) -> Conditioning:
        """Training augmentation: Gaussian noise of `std` (standardised units) on pose and gaze. Pose is nearly unique
        per frame, so without it the networks can name the frame by its pose and ignore the expression."""
        if std <= 0:
            return self
        return Conditioning(
            self.pose + std * torch.randn_like(self.pose),
            self.gaze + std * torch.randn_like(self.gaze),
            self.expression,
        )

    def vector(self) -> torch.Tensor:
        """(T, 11 + Ke): all of it as one vector (the conditional discriminator's input)."""
        return torch.cat([self.pose, self.gaze, self.expression], -1)


# Floors of the standard deviations used to standardise the conditioning: a coefficient that hardly moves in the
# training frames must not be blown up (rotation 6D entries ~1 degree, translation 1 mm, gaze ~1 degree).
STD_FLOOR = {"pose": np.array([0.02] * 6 + [0.1] * 3, np.float32), "gaze": 0.02, "expression": 0.1}


def standardise(
    pose: np.ndarray, gaze_rad: np.ndarray, expression: np.ndarray, norm: dict[str, np.ndarray]
) -> Conditioning:
    """Raw features -> network inputs: z = (x - mean) / std with the training frames' statistics in `norm`."""
    z = lambda x, k: torch.from_numpy(((x - norm[f"{k}_mean"]) / norm[f"{k}_std"]).astype(np.float32))  # noqa: E731
    return Conditioning(z(pose, "pose"), z(gaze_rad, "gaze"), z(expression, "expression"))


def pose_features(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(T,3,3) model->camera rotation, (T,3) translation -> (T, 9): 6D of the head rotation relative to frontal
    (axis-angle of the full rotation sits near pi for a frontal face, which wraps), then the translation."""
    r_head = camera_to_head_rotation(torch.as_tensor(rotation, dtype=torch.float64)).numpy()
    six = r_head[:, :, :2].transpose(0, 2, 1).reshape(-1, 6)
    return np.concatenate([six, translation], axis=1).astype(np.float32)


# MediaPipe face mesh lip contour (FACEMESH_LIPS): the mouth box of the mouth-weighted loss and the benchmark.
LIP_LANDMARKS = (
    61,
    146,
    91,
    181,
    84,
    17,
    314,
    405,
    321,
    375,
    291,
    185,
    40,
    39,
    37,
    0,
    267,
    269,
    270,
    409,
    78,
    95,
    88,
    178,
    87,
    14,
    317,
    402,
    318,
    324,
    308,
    191,
    80,
    81,
    82,
    13,
    312,
    311,
    310,
    415,
)


def mouth_boxes(landmarks: np.ndarray, valid: np.ndarray, scale: float, size: int, margin: float = 0.25) -> np.ndarray:
    """(T, 478, >=2) crop-pixel landmarks -> (T, 4) int boxes x0, y0, x1, y1 (exclusive) at `size` px around the lips,
    grown by `margin` of their extent on each side; frames without landmarks get the median box."""
    lips = landmarks[:, LIP_LANDMARKS, :2].astype(np.float64) * scale
    lo, hi = lips.min(1), lips.max(1)
    pad = margin * (hi - lo)
    boxes = np.concatenate([lo - pad, hi + pad], 1)
    ok = valid & np.isfinite(boxes).all(1)
    if ok.any():
        boxes[~ok] = np.median(boxes[ok], 0)
    else:
        boxes[:] = [size * 0.3, size * 0.6, size * 0.7, size * 0.9]
    boxes = np.round(boxes).astype(np.int64)
    boxes[:, :2] = np.clip(boxes[:, :2], 0, size - 1)
    boxes[:, 2:] = np.clip(boxes[:, 2:], boxes[:, :2] + 1, size)
    return boxes


@dataclass
class TrackingData:
    path: Path
    frames: np.ndarray | FrameFile  # (T, R, R, 3) uint8 at the renderer's resolution: in memory or read by rows
    pose: np.ndarray  # (T, 9) pose_features (raw)
    gaze_rad: np.ndarray  # (T, 2) pitch, yaw relative to the head
    expression: np.ndarray  # (T, Ke)
    valid: np.ndarray  # (T,) bool
    fps: float
    train_idx: np.ndarray
    test_idx: np.ndarray
    mouth: np.ndarray  # (T, 4) int mouth boxes x0, y0, x1, y1 at the renderer's resolution
    expression_names: tuple[str, ...] = ()
    crop_resolution: int = 0

    @property
    def resolution(self) -> int:
        return int(self.frames.shape[1])

    def conditioning(self, idx: np.ndarray, norm: dict[str, np.ndarray]) -> Conditioning:
        return standardise(self.pose[idx], self.gaze_rad[idx], self.expression[idx], norm)

    def normalisation(self) -> dict[str, np.ndarray]:
        """Mean and (floored) std of pose, gaze and expression over the training frames: every input of F moves on
        the same scale, so a small but telling signal (jawOpen, 0..0.3) is not drowned by the pose encodings."""
        out = {}
        for key, values in (("pose", self.pose), ("gaze", self.gaze_rad), ("expression", self.expression)):
            x = values[self.train_idx].astype(np.float64)
            out[f"{key}_mean"] = x.mean(0).astype(np.float32)
            out[f"{key}_std"] = np.maximum(x.std(0), STD_FLOOR[key]).astype(np.float32)
        return out


def split_counts(n_frames: int, train: float, test: float) -> tuple[int, int]:
    n_train = int(round(train * n_frames)) if train < 1 else int(train)
    n_test = int(round(test * n_frames)) if test < 1 else int(test)
    n_test = max(n_test, 1)
    if n_train + n_test > n_frames:
        raise PipelineInputError(
            None, f"train_frames ({n_train}) + test_frames ({n_test}) exceed the video's {n_frames} frames"
        )
    return n_train, n_test


def load_tracking(
    path: str | Path,
    train_frames: float = 0.9,
    test_frames: float = 0.1,
    min_train_frames: int = 16,
    resolution: int | None = None,
    cache_dir: str | Path | None = None,
    in_memory_mb: float = float("inf"),
) -> TrackingData:
    """Read everything the renderer needs, frames resized to `resolution` (None: the crop's): held in memory up to
    `in_memory_mb` MB (at that resolution), else streamed from a frame cache in `cache_dir` (renderer.frames; no
    `cache_dir`: always in memory). Bad files fail with PipelineInputError naming the file and reason."""
    motion = read_motion(path)
    path = Path(path)
    frames = frames_at(path, resolution, cache_dir, in_memory_mb)
    landmarks = read_datasets(path, ["crop/landmarks"]).get("crop/landmarks")
    t, res = frames.shape[0], frames.shape[1]
    crop_res = int(frames_shape(path)[0][1])
    if len(motion.expression) != t:
        raise PipelineInputError(path, f"expression has {len(motion.expression)} frames, frames has {t}")
    valid = motion.valid
    try:
        n_train, n_test = split_counts(t, train_frames, test_frames)
    except PipelineInputError as exc:
        raise PipelineInputError(path, exc.reason) from None
    train_idx = np.flatnonzero(valid[:n_train])
    test_idx = np.arange(t - n_test, t)
    if len(train_idx) < min_train_frames:
        raise PipelineInputError(
            path, f"too few valid training frames: {len(train_idx)} < min_train_frames {min_train_frames}"
        )
    if landmarks is not None and len(landmarks) == t:
        mouth = mouth_boxes(landmarks, valid, res / crop_res, res)
    else:  # a file without crop landmarks: the lower-middle of the crop
        mouth = np.tile(np.array([[0.3, 0.6, 0.7, 0.9]]) * res, (t, 1)).astype(np.int64)
    # non-finite test conditioning (should not happen: stages interpolate) -> zeros rather than NaN in the network
    pose = pose_features(np.nan_to_num(motion.rotation), np.nan_to_num(motion.translation).astype(np.float32))
    gaze = np.deg2rad(np.nan_to_num(motion.gaze_deg)).astype(np.float32)
    return TrackingData(
        path,
        frames,
        pose,
        gaze,
        np.nan_to_num(motion.expression),
        valid,
        motion.fps,
        train_idx,
        test_idx,
        mouth,
        tuple(motion.expression_names),
        crop_res,
    )


class FrameCache:
    """The training crops `frames[rows]` as one uint8 tensor on the GPU when they fit (filled block by block), else in
    pinned host memory when they are in memory already, else streamed from their FrameFile (`StreamingBatches`,
    reading the next batch while a step runs): no file I/O per step unless the frames are too many to hold."""

    def __init__(
        self,
        frames: np.ndarray | FrameFile,
        rows: np.ndarray,
        device: torch.device,
        mode: str = "auto",
        headroom: float = 0.5,
    ):
        self.device = device
        self.stream: StreamingBatches | None = None
        nbytes = len(rows) * int(np.prod(frames.shape[1:]))
        on_gpu = False
        if device.type == "cuda" and mode != "host":
            free, _ = torch.cuda.mem_get_info(device)
            on_gpu = mode == "gpu" or nbytes < headroom * free
            if not on_gpu:
                log.warning(
                    "training frames (%.1f GiB) do not fit in half the free GPU memory: kept in %s",
                    nbytes / 2**30,
                    "pinned host memory" if isinstance(frames, np.ndarray) else "their frame cache, read per batch",
                )
        if on_gpu:
            self.frames = to_device_blockwise(frames, rows, device)
        elif isinstance(frames, FrameFile):
            self.stream = StreamingBatches(frames, rows, pin=device.type == "cuda")
            self.frames = None
        else:
            tensor = torch.from_numpy(np.ascontiguousarray(frames[rows]))
            self.frames = tensor.pin_memory() if device.type == "cuda" else tensor
        self.on_device = on_gpu or (device.type == "cpu" and self.stream is None)

    def prefetch(self, idx: torch.Tensor) -> None:
        """Start reading the batch `idx` that a later `batch(idx)` will ask for (streamed frames only)."""
        if self.stream is not None:
            self.stream.prefetch(idx)

    def batch(self, idx: torch.Tensor, channels_last: bool) -> torch.Tensor:
        """(B,) indices (positions in `rows`) -> (B, 3, R, R) float in [-1, 1] on the device."""
        if self.stream is not None:
            x = self.stream.batch(idx).to(self.device, non_blocking=True)
        else:
            x = self.frames[idx.to(self.frames.device)].to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
