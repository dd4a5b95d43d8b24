"""Decoder D (the decoding half of pix2pixHD's global generator) and the CNN that replaces F in the ablation."""

from __future__ import annotations

import math

import torch
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.InstanceNorm2d(ch),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.InstanceNorm2d(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(cout), nn.ReLU(True)
    )


class Pix2PixHDDecoder(nn.Module):
    """(B, C_in, h, w) feature map -> (B, 3, 4h, 4w) residual image (the generator adds its mean-frame prior): input
    conv, residual blocks, 2 upsamplings, 7x7 output.

    Unlike pix2pixHD, the input convolution has no instance norm: F's feature map is the only source of the frame's
    conditioning, and normalising it per frame both removes its per-channel means and makes the decoder's gradient
    into F ~25x the low-resolution colour loss's, so that the colour never learned (issue 10).
    """

    def __init__(self, in_ch: int, channels: int = 256, n_res: int = 6):
        super().__init__()
        self.inp = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(in_ch, channels, 3), nn.ReLU(True))
        self.res = nn.Sequential(*[ResBlock(channels) for _ in range(n_res)])
        self.up = nn.Sequential(_up(channels, channels // 2), _up(channels // 2, channels // 4))
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(channels // 4, 3, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.up(self.res(self.inp(x))))


class CNNFeatureMap(nn.Module):
    """Ablation "CNN decoder only": F's H/4 feature map made by a CNN from the conditioning vector alone.

    DCGAN-style: a linear layer gives every position of a 4x4 map its own weights (a replicated tile would tell the
    upsampling stack nothing about where it is, and the instance norms would erase the conditioning), then
    transposed convolutions double it to H/4. No normalisation: per-frame statistics are the conditioning here.
    """

    def __init__(self, cond_dim: int, grid_size: int, out_ch: int, channels: int = 256):
        super().__init__()
        n_up = math.log2(grid_size / 4)
        if n_up < 0 or n_up != int(n_up):
            raise ValueError(f"CNN-only variant needs H/4 = 4 * 2^k, got H/4 = {grid_size}")
        self.channels = channels
        self.fc = nn.Linear(cond_dim, channels * 16)
        grow: list[nn.Module] = []
        for _ in range(int(n_up)):
            grow += [nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        self.grow = nn.Sequential(*grow)
        self.out = nn.Conv2d(channels, out_ch, 3, padding=1)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        x = nn.functional.leaky_relu(self.fc(cond), 0.2).view(-1, self.channels, 4, 4)
        return self.out(self.grow(x))
