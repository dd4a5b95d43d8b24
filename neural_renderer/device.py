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


def exact_float32() -> None:
    """Turn off TF32 for this process: PyTorch uses it for convolutions on Ampere+ GPUs by default, which shifts
    metric features by ~1e-3 relative; metrics must not depend on the GPU they ran on."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
