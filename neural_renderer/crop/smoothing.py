"""Pure 1-D temporal filters over (T, D) signals: gap filling, Savitzky-Golay, one-euro.

Each column is filtered independently along the time axis (axis 0); inputs are not modified.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import savgol_filter


def interpolate_invalid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill rows where `valid` is False by linear interpolation in time; before the first / after the last valid row
    hold that row's value. Raises ValueError if no row is valid."""
    values = np.asarray(values, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != values.shape[:1]:
        raise ValueError(f"valid must have shape ({values.shape[0]},), got {valid.shape}")
    if not valid.any():
        raise ValueError("no valid rows to interpolate from")
    if valid.all():
        return values.copy()
    t = np.arange(len(valid))
    flat = values.reshape(len(valid), -1)
    out = np.empty_like(flat)
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(t, t[valid], flat[valid, j])  # np.interp holds the end values outside the range
    return out.reshape(values.shape)


def savgol_smooth(values: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay along time: a local polynomial fit, zero lag, keeps slow motion and ramps exactly.

    Short signals shrink the window to the largest odd length <= T; below polyorder + 2 frames nothing is smoothed.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    window = min(int(window), n if n % 2 else n - 1)
    if window < polyorder + 2 or window < 3:
        return values.copy()
    return savgol_filter(values, window_length=window, polyorder=polyorder, axis=0, mode="interp")


def _alpha(cutoff_hz: np.ndarray | float, rate_hz: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass with the given cutoff at the given sample rate (Casiez eq. 1)."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    te = 1.0 / rate_hz
    return 1.0 / (1.0 + tau / te)


def one_euro_filter(
    values: np.ndarray, rate_hz: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0
) -> np.ndarray:
    """One-euro filter (Casiez, Roussel, Vogel, CHI 2012), vectorised over columns, causal in time.

    An exponential smoother whose cutoff rises with the (low-passed) speed: fc = min_cutoff + beta * |dx/dt|, so slow
    jitter is removed strongly (low cutoff) while fast motion is followed with little lag (high cutoff).
    `rate_hz` is the sample rate (fps); cutoffs are in Hz; beta in 1 / (signal units per second).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.shape[0] == 0:
        return x.copy()
    if rate_hz <= 0 or min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
        raise ValueError("one_euro_filter needs rate_hz, min_cutoff, d_cutoff > 0 and beta >= 0")
    out = np.empty_like(x)
    out[0] = x[0]
    dx_hat = np.zeros_like(x[0])
    a_d = _alpha(d_cutoff, rate_hz)
    for i in range(1, x.shape[0]):
        dx = (x[i] - out[i - 1]) * rate_hz
        dx_hat = a_d * dx + (1.0 - a_d) * dx_hat
        a = _alpha(min_cutoff + beta * np.abs(dx_hat), rate_hz)
        out[i] = a * x[i] + (1.0 - a) * out[i - 1]
    return out
