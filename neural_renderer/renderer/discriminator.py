"""Multi-scale PatchGAN discriminator (pix2pixHD: 3 strided layers, 2 scales), optionally conditional.

Conditional = a projection discriminator (Miyato & Koyama 2018): each scale's patch score is
D(x, y) = w^T phi(x) + <E y, phi(x)> per patch, with phi(x) the last hidden features and y the frame's standardised
pose, gaze and expression. An image-only discriminator can only ask for "a face", not for *this* expression
(pix2pixHD conditions its discriminator on the input label map for the same reason).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchGAN(nn.Module):
    def __init__(self, in_ch: int = 3, ndf: int = 64, n_layers: int = 3, cond_dim: int = 0):
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(in_ch, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True))]
        ch = ndf
        for i in range(1, n_layers + 1):
            nxt = min(ch * 2, 512)
            stride = 2 if i < n_layers else 1
            blocks.append(
                nn.Sequential(nn.Conv2d(ch, nxt, 4, stride, 2), nn.InstanceNorm2d(nxt), nn.LeakyReLU(0.2, True))
            )
            ch = nxt
        self.blocks = nn.ModuleList(blocks)
        self.score = nn.Conv2d(ch, 1, 4, 1, 2)
        self.embed = nn.Linear(cond_dim, ch, bias=False) if cond_dim else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every block's features, the patch scores last."""
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        score = self.score(x)
        if self.embed is not None:
            proj = (x * self.embed(cond.to(x.dtype))[:, :, None, None]).sum(1, keepdim=True)
            score = score + F.interpolate(proj, size=score.shape[-2:], mode="nearest")
        feats.append(score)
        return feats


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, in_ch: int = 3, ndf: int = 64, n_layers: int = 3, n_scales: int = 2, cond_dim: int = 0):
        super().__init__()
        self.nets = nn.ModuleList([PatchGAN(in_ch, ndf, n_layers, cond_dim) for _ in range(n_scales)])

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> list[list[torch.Tensor]]:
        out = []
        for i, net in enumerate(self.nets):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(net(x, cond))
        return out
