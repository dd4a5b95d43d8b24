"""What a renderer must beat on held-out frames, and how its mouth responds: pure functions on a `TrackingData`.

- mean frame: the mean training frame, a constant image;
- nearest frame (retrieval): per test frame, the training frame whose standardised pose and expression are closest,
  d(i, j) = mean_k (p_ik - p_jk)^2 + mean_k (e_ik - e_jk)^2 (each group weighted equally);
- mouth L1: mean |a - b| / 255 inside each frame's mouth box (lip landmarks);
- jaw sweep: mouth L1 between renders of the same frames with jawOpen at its 5th and 95th training percentile
  (0 = the mouth ignores the expression).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from neural_renderer.renderer.data import TrackingData
from neural_renderer.renderer.frames import mean_frame as block_mean


class Renders(Protocol):
    def render_sequence(self, pose: np.ndarray, gaze_rad: np.ndarray, expression: np.ndarray) -> np.ndarray: ...


def mean_frame(data: TrackingData, n: int) -> np.ndarray:
    """(n, R, R, 3): the mean training frame, repeated."""
    return np.repeat(block_mean(data.frames, data.train_idx).round().astype(np.uint8)[None], n, 0)


def nearest_frames(data: TrackingData, norm: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of the training frames closest to each test frame in standardised pose and expression."""
    c = data.conditioning(np.arange(len(data.frames)), norm)
    pose, expr = c.pose.numpy(), c.expression.numpy()
    a, b = data.test_idx, data.train_idx
    d = ((pose[a, None] - pose[None, b]) ** 2).mean(-1) + ((expr[a, None] - expr[None, b]) ** 2).mean(-1)
    return b[d.argmin(1)]


def mouth_l1(a: np.ndarray, b: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) mean absolute difference in [0, 1] inside each frame's mouth box (x0, y0, x1, y1)."""
    return np.array(
        [
            np.abs(a[i, y0:y1, x0:x1].astype(np.float64) - b[i, y0:y1, x0:x1]).mean() / 255
            for i, (x0, y0, x1, y1) in enumerate(boxes)
        ]
    )


def jaw_sweep(renderer: Renders, data: TrackingData, idx: np.ndarray | None = None) -> float | None:
    """Mean mouth-box change between renders with jawOpen at its 5th and 95th training percentile (None: no jawOpen)."""
    if "jawOpen" not in data.expression_names:
        return None
    j = data.expression_names.index("jawOpen")
    lo, hi = np.percentile(data.expression[data.train_idx, j], [5, 95])
    idx = data.test_idx if idx is None else idx
    renders = []
    for value in (lo, hi):
        expr = data.expression[idx].copy()
        expr[:, j] = value
        renders.append(renderer.render_sequence(data.pose[idx], data.gaze_rad[idx], expr))
    return float(mouth_l1(renders[0], renders[1], data.mouth[idx]).mean())
