"""Losses: L1, VGG19 perceptual (weights from a local file: nothing is downloaded), LSGAN and feature matching."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from neural_renderer.errors import PipelineInputError

log = logging.getLogger(__name__)

# torchvision's vgg19().features layout; pix2pixHD's VGGLoss slices end after relu1_1, 2_1, 3_1, 4_1, 5_1.
_VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
_SLICE_ENDS = (2, 7, 12, 21, 30)
_VGG_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def _vgg19_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    ch = 3
    for v in _VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(ch, v, 3, padding=1), nn.ReLU(inplace=False)]
            ch = v
    return nn.Sequential(*layers)


class VGGLoss(nn.Module):
    """pix2pixHD's perceptual loss. `weights_path`: torchvision vgg19 state dict (keys `features.N.weight`)."""

    def __init__(self, weights_path: str | Path):
        super().__init__()
        path = Path(weights_path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise PipelineInputError(path, f"cannot load VGG19 weights ({exc})") from None
        features = _vgg19_features()
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.") or k[0].isdigit()}
        features.load_state_dict(state)
        self.features = features[: _SLICE_ENDS[-1]].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        x = torch.cat([fake, real]).float()
        x = ((x + 1) / 2 - self.mean) / self.std
        loss, start = x.new_zeros(()), 0
        for end, w in zip(_SLICE_ENDS, _VGG_WEIGHTS):
            x = self.features[start:end](x)
            f, r = x.chunk(2)
            loss = loss + w * F.l1_loss(f, r.detach())
            start = end
        return loss


def make_perceptual(weights_path: str | None, weight: float) -> VGGLoss | None:
    if weight <= 0:
        return None
    if not weights_path:
        log.warning("perceptual loss off: train.vgg_weights is not set (no package here ships VGG19 weights offline)")
        return None
    return VGGLoss(weights_path)


def gan_loss(preds: list[list[torch.Tensor]], real: bool) -> torch.Tensor:
    """LSGAN (pix2pixHD default) on the last output of each scale, averaged over scales."""
    target = 1.0 if real else 0.0
    return sum(F.mse_loss(p[-1].float(), torch.full_like(p[-1].float(), target)) for p in preds) / len(preds)


def feature_matching(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
    n = len(fake)
    loss = 0.0
    for pf, pr in zip(fake, real):
        for f, r in zip(pf[:-1], pr[:-1]):
            loss = loss + F.l1_loss(f.float(), r.detach().float()) / (n * (len(pf) - 1))
    return loss
