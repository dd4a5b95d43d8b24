"""The optimiser step and the finite-loss check shared by the training loops (renderer, audio networks).

The check takes values already read from the device: the renderer reads its losses once per logging window (one host
sync per window, not per step), the audio loop every step; both then fail the same way, naming the iteration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch


def optimiser_step(optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """theta <- update(theta, d loss / d theta) for the optimiser's parameters (gradients from this loss only)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


def check_finite(row: Mapping[str, float], key: str, where: str) -> None:
    """Raise FloatingPointError when `row[key]` (a loss read to the host) is NaN or infinite; `where` names when,
    e.g. "at iteration 12", and the message carries the whole row (which term diverged)."""
    if not math.isfinite(row[key]):
        raise FloatingPointError(f"non-finite loss {where}: {dict(row)}")
