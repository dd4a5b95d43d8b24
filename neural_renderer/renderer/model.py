"""The generator: conditioning (encoded pose and gaze, expression, latent code) -> (image H x W, colour H/4 x W/4).

`full`: MLP F on the H/4 grid (pixel position + frame conditioning + per-frame latent) -> colour and features ->
decoder D. `cnn` (the ablation "CNN decoder only"): a CNN makes the same H/4 map from the frame conditioning alone
(no per-pixel MLP, no latent), and the same decoder D finishes it.

Both outputs are residuals over the identity's mean training frame (`prior`, stored with the weights): image =
mean + D(.), colour = mean pooled to H/4 + F's colour. A fresh network thus starts at the mean frame (a baseline it
must beat anyway) and spends its steps on what moves: the face, not the wall behind it. No tanh: around a dark mouth
or a bright wall tanh(atanh(mean) + x) has a ~50x smaller gradient, and the mouth learned slower than without the
prior; renders are clamped to [-1, 1] when they become pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from neural_renderer.renderer.config import ModelConfig
from neural_renderer.renderer.decoder import CNNFeatureMap, Pix2PixHDDecoder
from neural_renderer.renderer.encoding import encoded_dim, positional_encoding
from neural_renderer.renderer.mlp import PortraitMLP

POSE_DIM = 9  # 6D rotation (first two columns of the head rotation relative to frontal) + translation
GAZE_DIM = 2  # pitch, yaw


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
        fmap_ch = 3 + cfg.feature_dim
        if cfg.variant == "full":
            self.mlp = PortraitMLP(
                base + cfg.latent_dim, self.grid, cfg.width, cfg.depth, cfg.skip_layer, cfg.feature_dim, cfg.pixel_freqs
            )
        else:  # ablation: pose, expression and gaze only (no MLP, no per-frame latent)
            self.cnn = CNNFeatureMap(base, self.grid, fmap_ch, cfg.decoder_channels)
        self.decoder = Pix2PixHDDecoder(fmap_ch, cfg.decoder_channels, cfg.decoder_res_blocks)
        self.register_buffer("prior", torch.zeros(1, 3, resolution, resolution))

    def set_prior(self, mean_frame: torch.Tensor) -> None:
        """The mean training frame, (3, H, W) in [-1, 1]."""
        self.prior.copy_(mean_frame.reshape(self.prior.shape).to(self.prior))

    def encode(self, pose: torch.Tensor, gaze: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                positional_encoding(pose, self.cfg.pose_freqs),
                positional_encoding(gaze, self.cfg.gaze_freqs),
                expression,
            ],
            -1,
        )

    def forward(
        self, pose: torch.Tensor, gaze: torch.Tensor, expression: torch.Tensor, latent: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised pose (B, 9), gaze (B, 2), expression (B, Ke), latent (B, latent_dim) -> image (B,3,H,W) (about
        [-1, 1], unclamped), low-resolution colour (B,3,H/4,W/4)."""
        cond = self.encode(pose, gaze, expression)
        if self.cfg.variant == "cnn":
            fmap = self.cnn(cond)
        else:
            fmap = self.mlp(torch.cat([cond, latent.to(cond.dtype)], -1))
        prior = self.prior.to(fmap.dtype)
        return prior + self.decoder(fmap), fmap[:, :3] + torch.nn.functional.avg_pool2d(prior, 4)
