"""N_exp and N_pose: audio windows of neighbouring frames -> per-frame expression / head pose (after AD-NeRF).

Each net is `AudioRegressor`: a 1D conv encoder over one frame's window (mel bins as channels, time as the conv
axis, strided down to a few steps) gives a per-frame code; AD-NeRF's attention net then weighs the codes of
`smooth_frames` neighbouring frames (a small conv over the frame axis -> softmax over the neighbours) and the
weighted sum goes through the output layer. The learned weights smooth the prediction over time (no jitter from
frame-by-frame regression) while letting a sharp onset dominate when the audio has one.

N_exp: sigmoid outputs in [0, 1] (the expression coefficients' range).
N_pose: (B, 9) = 6D rotation relative to the identity's mean rotation (added to the identity's 6D, so zero output is
the mean pose) + translation offset from the mean in standardised units.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neural_renderer.audio.config import AudioNetConfig
from neural_renderer.fitting.rotation import rotation_6d_to_matrix

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # first two columns of I (matrix_to_rotation_6d convention)
POSE_OUT = 9


class AudioEncoder(nn.Module):
    """(B, n_mels, W) -> (B, code_dim)."""

    def __init__(self, n_mels: int, window: int, channels: int, code_dim: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(n_mels, channels, 3, padding=1), nn.LeakyReLU(0.02)]
        length = window
        while length > 4:
            layers += [nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.02)]
            length = (length + 1) // 2
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Linear(channels * length, code_dim), nn.LeakyReLU(0.02), nn.Linear(code_dim, code_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


class AttentionSmoother(nn.Module):
    """AD-NeRF's AudioAttNet: (B, K, D) codes of K neighbouring frames -> (B, D) softmax-weighted sum."""

    def __init__(self, code_dim: int, k: int):
        super().__init__()
        hidden = max(code_dim // 4, 4)
        self.conv = nn.Sequential(
            nn.Conv1d(code_dim, hidden, 3, padding=1),
            nn.LeakyReLU(0.02),
            nn.Conv1d(hidden, hidden // 2, 3, padding=1),
            nn.LeakyReLU(0.02),
            nn.Conv1d(hidden // 2, 1, 3, padding=1),
        )
        self.fc = nn.Linear(k, k)

    def weights(self, codes: torch.Tensor) -> torch.Tensor:
        scores = self.conv(codes.transpose(1, 2))[:, 0]  # (B, K)
        return torch.softmax(self.fc(scores), dim=1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return (self.weights(codes)[:, :, None] * codes).sum(1)


class AudioRegressor(nn.Module):
    """(B, K, n_mels, W) windows of K consecutive frames (the centre one at K // 2) -> (B, out_dim)."""

    def __init__(self, n_mels: int, window: int, out_dim: int, cfg: AudioNetConfig):
        super().__init__()
        self.k = max(cfg.smooth_frames, 1)
        self.encoder = AudioEncoder(n_mels, window, cfg.channels, cfg.code_dim)
        self.smoother = AttentionSmoother(cfg.code_dim, self.k) if self.k > 1 else None
        self.head = nn.Linear(cfg.code_dim, out_dim)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        b, k = windows.shape[:2]
        codes = self.encoder(windows.flatten(0, 1)).view(b, k, -1)
        code = self.smoother(codes) if self.smoother is not None else codes[:, k // 2]
        return self.head(code)


class ExpressionNet(AudioRegressor):
    """N_exp: -> (B, Ke) coefficients in [0, 1]: the `driven` ones from the audio (sigmoid outputs), the others at
    the identity's `mean` (what predicting from audio would converge to for coefficients speech does not move)."""

    def __init__(self, n_mels: int, window: int, mean: np.ndarray, driven: np.ndarray, cfg: AudioNetConfig):
        driven = np.asarray(driven, bool)
        if driven.shape != np.shape(mean) or not driven.any():
            raise ValueError(f"driven must be a non-empty mask of the {np.size(mean)} coefficients")
        super().__init__(n_mels, window, int(driven.sum()), cfg)
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean, np.float32)), persistent=False)
        self.register_buffer("driven_index", torch.from_numpy(np.flatnonzero(driven)), persistent=False)

    @torch.no_grad()
    def start_at_mean(self) -> None:
        """The mean predictor: zero output weights, bias = logit(mean) (mean clipped to [1e-3, 1 - 1e-3])."""
        m = self.mean[self.driven_index].clamp(1e-3, 1 - 1e-3)
        self.head.weight.zero_()
        self.head.bias.copy_(torch.log(m / (1 - m)))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        driven = torch.sigmoid(super().forward(windows))
        out = self.mean.expand(len(driven), -1).clone()
        out[:, self.driven_index] = driven
        return out


class PoseNet(AudioRegressor):
    """N_pose: -> (B, 9) 6D rotation relative to the mean (identity at zero) + standardised translation offset."""

    def __init__(self, n_mels: int, window: int, cfg: AudioNetConfig):
        super().__init__(n_mels, window, POSE_OUT, cfg)
        self.register_buffer("identity6", torch.tensor(IDENTITY_6D), persistent=False)

    @torch.no_grad()
    def start_at_mean(self) -> None:
        """Zero output layer: the mean pose (identity rotation, zero offset) for every input."""
        self.head.weight.zero_()
        self.head.bias.zero_()

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        out = super().forward(windows)
        return torch.cat([out[:, :6] + self.identity6, out[:, 6:]], dim=1)


def pose_to_matrix(pose: torch.Tensor) -> torch.Tensor:
    """(B, 9) N_pose output -> (B, 3, 3) relative rotation (Gram-Schmidt of the 6D part)."""
    return rotation_6d_to_matrix(pose[:, :6])


def neighbour_index(centre: torch.Tensor, k: int, lo: int | torch.Tensor, hi: int | torch.Tensor) -> torch.Tensor:
    """(B,) frame indices -> (B, K) indices of the K frames around each (centre at K // 2), clamped to [lo, hi)."""
    offsets = torch.arange(k, device=centre.device) - k // 2
    idx = centre[:, None] + offsets[None]
    return torch.maximum(
        torch.minimum(idx, torch.as_tensor(hi, device=centre.device) - 1), torch.as_tensor(lo, device=centre.device)
    )


def predict_sequence(net: AudioRegressor, features: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(T, n_mels, W) features of one clip -> (T, out_dim): every frame with its neighbours from the same clip."""
    t = features.shape[0]
    out = []
    for s in range(0, t, batch_size):
        centre = torch.arange(s, min(s + batch_size, t), device=features.device)
        out.append(net(features[neighbour_index(centre, net.k, 0, t)]))
    return torch.cat(out) if out else features.new_zeros((0,))


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(a, b)
