"""Audio file -> per-frame features at the target's fps -> N_exp / N_pose -> the target's PortraitRenderer ->
mp4 with the audio muxed in + frames HDF5 (schema `rendered`, kind "audio", frame_index = 0..T-1)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from neural_renderer.audio.config import AudioConfig, AudioRenderConfig
from neural_renderer.audio.features import audio_features, load_audio
from neural_renderer.audio.model import pose_to_matrix, predict_sequence
from neural_renderer.audio.train import FORMAT, build_nets
from neural_renderer.config import build_dataclass
from neural_renderer.device import resolve_device
from neural_renderer.errors import PipelineInputError
from neural_renderer.outputs import AUDIO
from neural_renderer.reenact.transfer import (
    motion_stats,
    project_to_rotation,
    smooth_rotations,
    smooth_sequence,
)
from neural_renderer.renderer.render import PortraitRenderer
from neural_renderer.storage import read_driving_motion, write_rendered
from neural_renderer.torch_files import load_weights
from neural_renderer.video.mp4 import write_mp4

log = logging.getLogger(__name__)


class AudioDriver:
    """A trained audio model: features -> expression (T, Ke), relative rotation (T, 3, 3), translation offset (T, 3)."""

    def __init__(self, path: str | Path, device: str = "auto"):
        path = Path(path)
        if not path.is_file():
            raise PipelineInputError(path, "audio model not found (train it first)")
        blob = load_weights(path, "audio model")
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise PipelineInputError(
                path,
                f"not an audio model "
                f"(format {blob.get('format') if isinstance(blob, dict) else type(blob).__name__!r}, "
                f"expected {FORMAT!r})",
            )
        self.path = path
        self.cfg = build_dataclass(AudioConfig, blob["config"])
        self.device = resolve_device(device)
        self.norm = {k: v.numpy() for k, v in blob["norm"].items()}
        self.exp_net, self.pose_net = build_nets(
            self.cfg, self.norm["expression_mean"], blob["expression_driven"].numpy()
        )
        self.exp_net.load_state_dict(blob["exp_net"])
        self.exp_net.to(self.device).eval()
        if self.pose_net is not None:
            self.pose_net.load_state_dict(blob["pose_net"])
            self.pose_net.to(self.device).eval()
        self.expression_names = list(blob["expression_names"])
        self.metrics = blob.get("metrics", {})
        self.fps = float(blob["fps"])

    @torch.inference_mode()
    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = torch.from_numpy(features).to(self.device)
        expression = predict_sequence(self.exp_net, x).cpu().numpy().astype(np.float32)
        t = len(features)
        if self.pose_net is None:
            return expression, np.repeat(np.eye(3)[None], t, 0), np.zeros((t, 3))
        pose = predict_sequence(self.pose_net, x).double()
        rel = pose_to_matrix(pose).cpu().numpy()
        offset = pose[:, 6:].cpu().numpy() * self.norm["translation_std"][None]
        return expression, rel, offset


def audio_motion(
    driver: AudioDriver, features: np.ndarray, gaze_deg: np.ndarray, cfg: AudioRenderConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What the renderer is driven with, per frame of `features`: N_exp's expression (T, Ke), N_pose's rotation
    (T, 3, 3) and translation (T, 3) about the training frames' mean pose, and the target's mean gaze (T, 2) deg
    (`gaze_deg`); smoothed when `cfg.smoothing_sigma` > 0. Separate from the rendering so it can be checked alone."""
    expression, rel, offset = driver.predict(features)
    rotation = project_to_rotation(rel @ driver.norm["rotation_mean"])
    translation = driver.norm["translation_mean"][None] + offset
    gaze = np.repeat(np.asarray(gaze_deg)[None], len(features), 0)
    if cfg.smoothing_sigma > 0:
        expression = np.clip(smooth_sequence(expression, cfg.smoothing_sigma), 0, 1).astype(np.float32)
        rotation = smooth_rotations(rotation, cfg.smoothing_sigma)
        translation = smooth_sequence(translation, cfg.smoothing_sigma)
    return expression, rotation, translation, gaze


def render_audio(
    audio_path: str | Path,
    target_tracking: str | Path,
    renderer_model: str | Path,
    audio_model: str | Path,
    out_mp4: str | Path,
    out_h5: str | Path,
    *,
    cfg: AudioRenderConfig,
    clip: str,
    target: str,
    ffmpeg: str,
) -> np.ndarray:
    """Returns the generated frames (T, R, R, 3), T = round(audio duration * the target's fps)."""
    driver = AudioDriver(audio_model, cfg.device)
    motion = read_driving_motion(target_tracking)
    if driver.expression_names != list(motion.expression_names):
        raise PipelineInputError(audio_model, f"trained on other expression coefficients than {target_tracking} has")
    renderer = PortraitRenderer(renderer_model, cfg.device, cfg.test_latent)
    if renderer.n_expression != len(driver.expression_names):
        raise PipelineInputError(
            renderer_model,
            f"renderer takes {renderer.n_expression} expression coefficients, "
            f"the audio model gives {len(driver.expression_names)}",
        )
    fps = motion.fps
    samples = load_audio(audio_path, driver.cfg.features.sample_rate, ffmpeg)
    feats = audio_features(samples, fps, driver.cfg.features)
    expression, rotation, translation, gaze = audio_motion(driver, feats, motion_stats(motion).gaze_deg, cfg)
    frames = renderer.render_motion(expression, rotation, translation, gaze, cfg.batch_size)
    n, r = len(frames), renderer.resolution
    write_rendered(
        out_h5,
        frames,
        np.arange(n),
        kind=AUDIO.name,
        video=f"{clip}_to_{target}",
        source_path=audio_path,
        stage_config=driver.cfg.to_dict() | {"render": dataclasses.asdict(cfg)},
        fps=fps,
        driver=clip,
        target=target,
        audio_model=str(audio_model),
        renderer_model=str(renderer_model),
    )
    try:
        write_mp4(out_mp4, n, lambda i: frames[i], r, r, fps, ffmpeg=ffmpeg, crf=cfg.crf, audio=Path(audio_path))
    except BaseException:
        Path(out_h5).unlink(missing_ok=True)
        raise
    log.info("rendered %d frames of %s from %s", n, target, audio_path)
    return frames
