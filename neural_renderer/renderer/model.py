"""The generator: conditioning (encoded pose and gaze, expression, latent code) -> (image H x W, colour H/4 x W/4)."""

from __future__ import annotations

import torch
from torch import nn

from neural_renderer.renderer.config import ModelConfig
from neural_renderer.renderer.decoder import CNNOnlyDecoder, Pix2PixHDDecoder
from neural_renderer.renderer.encoding import encoded_dim, positional_encoding
from neural_renderer.renderer.mlp import PortraitMLP

POSE_DIM = 9  # 6D rotation (first two columns of the head rotation relative to frontal) + translation
GAZE_DIM = 2  # pitch, yaw (radians)


class PortraitGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig, resolution: int, n_expression: int, n_latents: int):
        super().__init__()
        if resolution % 4:
            raise ValueError(f"resolution {resolution} is not divisible by 4")
        self.cfg = cfg
        self.resolution = resolution
        self.grid = resolution // 4
        self.latents = nn.Embedding(n_latents, cfg.latent_dim)
        nn.init.normal_(self.latents.weight, std=0.01)
        base = encoded_dim(POSE_DIM, cfg.pose_freqs) + encoded_dim(GAZE_DIM, cfg.gaze_freqs) + n_expression
        if cfg.variant == "full":
            self.mlp = PortraitMLP(base + cfg.latent_dim, self.grid, cfg.width, cfg.depth, cfg.skip_layer, cfg.feature_dim, cfg.pixel_freqs)
            self.decoder = Pix2PixHDDecoder(3 + cfg.feature_dim, cfg.decoder_channels, cfg.decoder_res_blocks)
        else:  # ablation: pose, expression and gaze only (no MLP, no per-frame latent)
            self.cnn = CNNOnlyDecoder(base, self.grid, cfg.decoder_channels)

    def encode(self, pose: torch.Tensor, gaze: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        return torch.cat([positional_encoding(pose, self.cfg.pose_freqs), positional_encoding(gaze, self.cfg.gaze_freqs), expression], -1)

    def forward(self, pose: torch.Tensor, gaze: torch.Tensor, expression: torch.Tensor, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pose (B, 9), gaze (B, 2) rad, expression (B, Ke), latent (B, latent_dim) -> image (B,3,H,W), low (B,3,H/4,W/4)."""
        cond = self.encode(pose, gaze, expression)
        if self.cfg.variant == "cnn":
            return self.cnn(cond)
        fmap = self.mlp(torch.cat([cond, latent.to(cond.dtype)], -1))
        return self.decoder(fmap), fmap[:, :3]
