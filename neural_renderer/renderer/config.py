"""Typed renderer configuration (defaults live here; `config.schema.yaml` $defs/renderer mirrors the fields)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelConfig:
    variant: str = "full"  # full: MLP + pix2pixHD decoder | cnn: ablation "CNN decoder only" (4x4 conditioning tile)
    width: int = 256  # MLP hidden width
    depth: int = 8  # linear layers of the MLP (before the output layer)
    skip_layer: int = 4  # the input is concatenated to the input of this (0-based) layer
    feature_dim: int = 32  # feature channels f per grid position (plus 3 colour channels)
    pixel_freqs: int = 10  # positional-encoding octaves of the pixel position
    pose_freqs: int = 4
    gaze_freqs: int = 4
    latent_dim: int = 32  # learnable per-frame latent code v_t
    decoder_channels: int = 256  # channels of the residual blocks (pix2pixHD: ngf * 2**n_down)
    decoder_res_blocks: int = 6
    decoder_upsamplings: int = 2  # fixed by the H/4 grid; kept explicit for the schema

    def __post_init__(self) -> None:
        if self.variant not in ("full", "cnn"):
            raise ValueError(f"variant must be 'full' or 'cnn', got {self.variant!r}")
        if not 0 < self.skip_layer < self.depth:
            raise ValueError(f"skip_layer {self.skip_layer} must be inside 1..depth-1 ({self.depth})")
        if self.decoder_upsamplings != 2:
            raise ValueError("decoder_upsamplings must be 2 (the MLP grid is H/4 x W/4)")


@dataclass
class TrainConfig:
    iterations: int = 100000
    batch_size: int = 16
    lr: float = 5e-4
    beta1: float = 0.9
    beta2: float = 0.999
    lr_discriminator: float = 5e-4
    train_frames: float = 0.9  # < 1: fraction of the video from its start; >= 1: a frame count
    test_frames: float = 0.1  # < 1: fraction from the video's end; >= 1: a frame count
    min_train_frames: int = 16  # fewer valid training frames is an error
    w_l1: float = 1.0  # L1 of the decoder output
    w_low: float = 1.0  # L1 of the low-resolution colour (H/4)
    w_vgg: float = 10.0  # perceptual loss; needs vgg_weights, else skipped with a warning
    w_adv: float = 1.0  # LSGAN adversarial loss (pix2pixHD default)
    w_fm: float = 10.0  # discriminator feature matching (pix2pixHD default)
    vgg_weights: str | None = None  # torchvision-format VGG19 state dict (.pth); null = no perceptual loss
    disc_channels: int = 64
    disc_layers: int = 3
    disc_scales: int = 2
    checkpoint_every: int = 1000
    log_every: int = 50
    sample_every: int = 5000
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True
    compile: bool = False  # torch.compile the generator
    gpu_cache: str = "auto"  # auto: training frames on the GPU as uint8 when they fit, else pinned host memory | gpu | host
    seed: int = 0
    progress: bool = True  # tqdm bar with it/s and loss


@dataclass
class RenderConfig:
    test_latent: str = "mean"  # latent code at test time: mean of the training codes | first | zero
    crf: int = 18
    side_by_side: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.test_latent not in ("mean", "first", "zero"):
            raise ValueError(f"test_latent must be mean, first or zero, got {self.test_latent!r}")


@dataclass
class RendererConfig:
    enabled: bool = False  # add trained renderers and renders of every video to the default targets
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    render: RenderConfig = field(default_factory=RenderConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
