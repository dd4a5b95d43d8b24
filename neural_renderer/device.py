"""Torch device choice shared by every stage that can use a GPU (fit, renderer training and rendering)."""

from __future__ import annotations

import torch

from neural_renderer.errors import PipelineInputError


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when a GPU is visible, else cpu; an explicit 'cuda' without a GPU is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineInputError(None, "device 'cuda' requested but no CUDA GPU is available (use 'auto' or 'cpu')")
    return torch.device(name)
