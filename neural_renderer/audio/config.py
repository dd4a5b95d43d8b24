"""Typed audio-driven configuration (defaults live here; `config.schema.yaml` $defs/audio mirrors the fields)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neural_renderer.config import build_dataclass
from neural_renderer.presets import Placement, apply_preset, place

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000  # the ingest stage's WAV rate; other inputs are resampled to it
    n_mels: int = 80
    win_ms: float = 25.0  # STFT window
    hop_ms: float = 10.0  # STFT hop: 100 mel frames per second
    fmin: float = 55.0
    fmax: float = 7600.0
    # Mel frames per video frame, centred on the frame's timestamp: 32 x 10 ms = 320 ms of context, the span of
    # AD-NeRF's 16 DeepSpeech windows of 20 ms (enough for a phoneme on either side of the current one).
    window: int = 32
    # utterance: per-clip mean/variance per mel bin (robust to recording level/channel) | none
    normalise: str = "utterance"

    def __post_init__(self) -> None:
        if self.normalise not in ("utterance", "none"):
            raise ValueError(f"normalise must be utterance or none, got {self.normalise!r}")
        if self.window < 4:
            raise ValueError(f"window must be >= 4 mel frames, got {self.window}")
        if not 0 < self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 < fmin < fmax <= sample_rate / 2, got {self.fmin}, {self.fmax}")


@dataclass(frozen=True)
class AudioNetConfig:
    channels: int = 128  # 1D conv channels over the window (time axis; mel bins are the input channels)
    code_dim: int = 64  # per-frame audio code
    # AD-NeRF's attention smoothing: codes of this many neighbouring frames are weighted by a learned softmax
    # attention and summed before the output layer (0 or 1 = per-frame, no temporal smoothing).
    smooth_frames: int = 8
    # Train N_pose as well (False: render with the identity's mean pose). Off by default: on held-out frames of d6 it
    # was further from the tracked pose than the mean pose (rotation 7.1 vs 6.3 deg; docs/BENCHMARKS.md, audio).
    pose: bool = False
    # Which expression coefficients N_exp predicts: speech (those speech moves: ARKit jaw* and mouth*; every one when
    # the basis is unnamed), the others held at the identity's mean | all (eyes and brows from the audio too).
    expression: str = "speech"

    def __post_init__(self) -> None:
        if self.channels < 1 or self.code_dim < 1 or self.smooth_frames < 0:
            raise ValueError("channels and code_dim must be >= 1, smooth_frames >= 0")
        if self.expression not in ("speech", "all"):
            raise ValueError(f"expression must be speech or all, got {self.expression!r}")


@dataclass(frozen=True)
class AudioTrainConfig:
    iterations: int = 20000
    batch_size: int = 64
    lr: float = 5e-4  # Adam (AD-NeRF's audio nets use 5e-4)
    weight_decay: float = 0.0
    w_expression: float = 1.0
    w_rotation: float = 1.0  # MSE of the 6D rotation relative to the mean
    w_translation: float = 1.0  # MSE of the standardised translation offset
    feature_noise: float = 0.0  # std of Gaussian noise on the normalised features (augmentation)
    # Early stopping (audio/train.py): this fraction at the end of the training range is held out, the nets are scored
    # on it every `val_every` iterations and each keeps its best weights (0 = off: the last weights are kept).
    val_frames: float = 0.1
    val_every: int = 50
    patience: int = 1000  # stop once this many iterations passed without a better validation error (0 = never)
    log_every: int = 500
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    allow_slow_cpu: bool = False  # run the seed preset on a CPU anyway (refused by default, with a time estimate)

    def __post_init__(self) -> None:
        if not 0 <= self.val_frames < 1:
            raise ValueError(f"val_frames must be in [0, 1), got {self.val_frames}")
        if self.val_every < 1 or self.patience < 0:
            raise ValueError(f"need val_every >= 1 and patience >= 0, got {self.val_every}, {self.patience}")


@dataclass(frozen=True)
class AudioRenderConfig:
    smoothing_sigma: float = 0.0  # extra Gaussian smoothing of the predicted parameters (frames; 0 = off)
    batch_size: int = 8
    test_latent: str | None = None  # renderer latent: mean | first | zero; null = the renderer's render.test_latent
    crf: int = 18
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.smoothing_sigma < 0:
            raise ValueError(f"smoothing_sigma must be >= 0, got {self.smoothing_sigma}")
        if self.test_latent not in (None, "mean", "first", "zero"):
            raise ValueError(f"test_latent must be mean, first, zero or null, got {self.test_latent!r}")


@dataclass(frozen=True)
class AudioConfig:
    targets: tuple[str, ...] = ()  # workflow key: identities that get N_exp/N_pose and a render of every clip
    preset: str = "auto"  # auto (seed on CUDA, preview on CPU) | seed (20K iterations) | preview (2K)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: AudioNetConfig = field(default_factory=AudioNetConfig)
    train: AudioTrainConfig = field(default_factory=AudioTrainConfig)
    render: AudioRenderConfig = field(default_factory=AudioRenderConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# What each preset changes from the defaults above. 20K iterations take ~35 min to ~1.8 h on 2 CPU cores (batch 64,
# smoothing over 8 frames); 2K take a few minutes. Early stopping ends either once `patience` iterations bring no
# better validation error (on 18-34 s of speech N_exp's best came within 300 iterations).
PRESETS: dict[str, dict[str, Any]] = {"seed": {}, "preview": {"train": {"iterations": 2000, "log_every": 250}}}


def resolve_audio_config(section: dict[str, Any]) -> tuple[AudioConfig, Placement]:
    """The audio section as configured (`preset`, `train.device`) -> the typed config that runs and where it runs.
    Called once per job, by the stage."""
    requested = build_dataclass(AudioConfig, section)
    placement = place(requested.preset, requested.train.device)
    return build_dataclass(AudioConfig, apply_preset(PRESETS, section, placement.preset)), placement
