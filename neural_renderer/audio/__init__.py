"""Audio-driven portraits (after AD-NeRF): per-video-frame log-mel windows (`features.py`), N_exp and N_pose
(`model.py`: audio window -> expression coefficients / head pose relative to the identity's mean), per-identity
training (`train.py`) and rendering an audio file with the identity's neural renderer (`render.py`)."""

from neural_renderer.audio.config import AudioConfig, AudioNetConfig, AudioRenderConfig, AudioTrainConfig, FeatureConfig

__all__ = ["AudioConfig", "AudioNetConfig", "AudioRenderConfig", "AudioTrainConfig", "FeatureConfig"]
