"""NeRF positional encoding (pure function)."""

from __future__ import annotations

import math

import torch


def positional_encoding(x: torch.Tensor, n_freqs: int, include_input: bool = True) -> torch.Tensor:
    """(..., D) -> (..., D * (include_input + 2 * n_freqs)): [x, sin(2^0 pi x), cos(2^0 pi x), ..., cos(2^(L-1) pi x)].

    Sine and cosine of each octave are grouped per octave, each over all D inputs.
    """
    parts = [x] if include_input else []
    for k in range(n_freqs):
        scaled = (2.0**k) * math.pi * x
        parts += [torch.sin(scaled), torch.cos(scaled)]
    return torch.cat(parts, dim=-1)


def encoded_dim(dim: int, n_freqs: int, include_input: bool = True) -> int:
    return dim * (int(include_input) + 2 * n_freqs)


def pixel_grid(height: int, width: int) -> torch.Tensor:
    """(height * width, 2) pixel-centre positions (x, y) in [-1, 1], row-major."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).reshape(-1, 2)
