"""MLP F: eight ReLU linear layers, input re-concatenated at the fourth (NeRF), colour + feature output per pixel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neural_renderer.renderer.encoding import encoded_dim, pixel_grid, positional_encoding

COND_INIT_GAIN = 0.1


class PortraitMLP(nn.Module):
    """F(gamma(x), gamma(p_t), gamma(g_t), e_t, v_t) -> (c, f), evaluated on the H/4 x W/4 grid.

    The input is [pixel encoding | frame conditioning]. The pixel part is the same for every frame and the frame part
    the same for every pixel, so the first and the skip layer apply their (single) weight matrix to the two column
    blocks separately and add them: exactly the concatenated input's product, without materialising
    (B, H/4 * W/4, D) inputs.
    """

    def __init__(
        self,
        cond_dim: int,
        grid_size: int,
        width: int = 256,
        depth: int = 8,
        skip_layer: int = 4,
        out_features: int = 32,
        pixel_freqs: int = 10,
    ):
        super().__init__()
        self.grid_size = grid_size
        self.skip_layer = skip_layer
        self.pixel_dim = encoded_dim(2, pixel_freqs)
        self.cond_dim = cond_dim
        self.in_dim = self.pixel_dim + cond_dim
        self.register_buffer(
            "pixel_enc", positional_encoding(pixel_grid(grid_size, grid_size), pixel_freqs), persistent=False
        )
        layers = []
        for i in range(depth):
            fan_in = self.in_dim if i == 0 else width + (self.in_dim if i == skip_layer else 0)
            layers.append(nn.Linear(fan_in, width))
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(width, 3 + out_features)
        # He initialisation: PyTorch's default (uniform, gain 1/sqrt(3)) shrinks the signal of a deep ReLU MLP about
        # sixfold per layer, so eight layers start near zero and the colour took hundreds of steps to move at all.
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        # The frame block (~150 standardised inputs: encoded pose and gaze, expression, latent) would otherwise
        # outweigh the pixel encoding (~30 inputs) ~5:1 at the first layer and start the MLP as a per-frame noise
        # generator that must first unlearn it (measured: the colour then did not reach the mean frame in 1000
        # steps). Starting it small lets F learn the portrait first and the conditioning on top.
        with torch.no_grad():
            for i in (0, skip_layer):
                off = 0 if i == 0 else width
                self.layers[i].weight[:, off + self.pixel_dim :] *= COND_INIT_GAIN

    def _split_linear(
        self, layer: nn.Linear, h: torch.Tensor | None, pix: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """layer(cat([h, pix, cond])) with pix (N, Dp) shared by the batch and cond (B, Dc) shared by the pixels."""
        w = layer.weight
        off = 0 if h is None else h.shape[-1]
        out = (
            F.linear(pix, w[:, off : off + self.pixel_dim])[None]
            + F.linear(cond, w[:, off + self.pixel_dim :], layer.bias)[:, None]
        )
        if h is not None:
            out = out + F.linear(h, w[:, :off])
        return out

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        """(B, cond_dim) -> (B, 3 + out_features, G, G) map (colour first)."""
        pix = self.pixel_enc.to(cond.dtype)
        h = None
        for i, layer in enumerate(self.layers):
            if i == 0 or i == self.skip_layer:
                h = self._split_linear(layer, h, pix, cond)
            else:
                h = layer(h)
            h = F.relu(h)
        y = self.out(h)  # (B, N, C)
        b, g = cond.shape[0], self.grid_size
        return y.transpose(1, 2).reshape(b, -1, g, g)
