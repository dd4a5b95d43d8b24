"""Decoder D (the decoding half of pix2pixHD's global generator) and the "CNN decoder only" ablation."""

from __future__ import annotations

import math

import torch
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(cout), nn.ReLU(True))


def _head(ch: int) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ch, 3, 7), nn.Tanh())


class Pix2PixHDDecoder(nn.Module):
    """(B, C_in, h, w) feature map -> (B, 3, 4h, 4w) in [-1, 1]: input conv, residual blocks, 2 upsamplings, output."""

    def __init__(self, in_ch: int, channels: int = 256, n_res: int = 6):
        super().__init__()
        self.inp = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(in_ch, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True))
        self.res = nn.Sequential(*[ResBlock(channels) for _ in range(n_res)])
        self.up = nn.Sequential(_up(channels, channels // 2), _up(channels // 2, channels // 4))
        self.head = _head(channels // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(self.res(self.inp(x))))


class CNNOnlyDecoder(nn.Module):
    """Ablation: the conditioning vector replicated on a 4x4 tile, upsampled to H/4 (instead of MLP + residual
    blocks), then the decoder's two upsamplings and output layer. Also returns a low-resolution colour at H/4."""

    def __init__(self, cond_dim: int, grid_size: int, channels: int = 256):
        super().__init__()
        n_up = math.log2(grid_size / 4)
        if n_up < 0 or n_up != int(n_up):
            raise ValueError(f"CNN-only variant needs H/4 = 4 * 2^k, got H/4 = {grid_size}")
        self.inp = nn.Sequential(nn.Conv2d(cond_dim, channels, 1), nn.ReLU(True))
        self.grow = nn.Sequential(*[_up(channels, channels) for _ in range(int(n_up))])
        self.low = nn.Conv2d(channels, 3, 1)
        self.up = nn.Sequential(_up(channels, channels // 2), _up(channels // 2, channels // 4))
        self.head = _head(channels // 4)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tile = cond[:, :, None, None].expand(-1, -1, 4, 4)
        feat = self.grow(self.inp(tile))
        return self.head(self.up(feat)), self.low(feat)
