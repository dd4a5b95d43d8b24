"""Pixel metrics of paired frames (uint8 RGB (N, H, W, 3), compared in [0, 1]): L1, PSNR, SSIM.

Each returns one value per frame, (N,) float64. Frames are processed a few at a time, so memory stays bounded for
long sequences. PSNR of an identical pair is +inf: aggregate with a cap (e.g. ``np.minimum(psnr, 100)``) or over the
finite values, and say which.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from skimage.metrics import structural_similarity

CHUNK_FRAMES = 16


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"need two (N, H, W, 3) frame stacks of one shape, got {a.shape} and {b.shape}")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"need uint8 frames, got {a.dtype} and {b.dtype}")
    return a, b


def _diff_chunks(a: np.ndarray, b: np.ndarray) -> Iterator[np.ndarray]:
    """Exact integer differences a - b (in 1/255 steps), CHUNK_FRAMES frames at a time."""
    a, b = _check_pair(a, b)
    for i in range(0, len(a), CHUNK_FRAMES):
        yield a[i : i + CHUNK_FRAMES].astype(np.int16) - b[i : i + CHUNK_FRAMES]


def l1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) mean absolute difference per frame, with the frames scaled to [0, 1]."""
    out = [np.abs(d).mean(axis=(1, 2, 3), dtype=np.float64) / 255.0 for d in _diff_chunks(a, b)]
    return np.concatenate(out) if out else np.zeros(0)


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) PSNR in dB with data range 1 (frames scaled to [0, 1]): -10 log10(MSE). Identical frames give +inf."""
    out = []
    for d in _diff_chunks(a, b):
        mse = np.square(d, dtype=np.int32).mean(axis=(1, 2, 3), dtype=np.float64) / 255.0**2
        with np.errstate(divide="ignore"):
            out.append(-10.0 * np.log10(mse))
    return np.concatenate(out) if out else np.zeros(0)


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) SSIM per frame by scikit-image with Wang et al.'s settings (Gaussian window sigma 1.5 truncated to 11 x 11,
    K1 0.01, K2 0.03, population covariances, data range 1), the mean over the colour channels and the image less a
    5-pixel border."""
    a, b = _check_pair(a, b)
    return np.array(
        [
            structural_similarity(
                x.astype(np.float64) / 255.0,
                y.astype(np.float64) / 255.0,
                channel_axis=-1,
                data_range=1.0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            for x, y in zip(a, b)
        ],
        np.float64,
    ).reshape(len(a))
