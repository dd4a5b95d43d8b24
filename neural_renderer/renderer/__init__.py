"""Per-identity neural portrait renderer (Dynamic Neural Portraits): MLP on a H/4 grid + pix2pixHD decoder."""

from neural_renderer.renderer.config import ModelConfig, RenderConfig, RendererConfig, TrainConfig

__all__ = ["ModelConfig", "RenderConfig", "RendererConfig", "TrainConfig"]
