"""train_audio: per-identity N_exp / N_pose from the video's audio and its tracked expression and head pose.

Trained on the renderer's training split (`renderer_cfg` = the `renderer` section, for train_frames/test_frames);
held-out errors on the renderer's test split (and the predict-the-mean baselines) are stored in the model file
under "metrics". A video without audio fails with PipelineInputError "no audio track".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neural_renderer.assets import sha256_file
from neural_renderer.audio.config import resolve_audio_config
from neural_renderer.audio.features import load_audio
from neural_renderer.audio.train import AudioTrainResult, prepare, train_audio
from neural_renderer.config import build_dataclass
from neural_renderer.errors import PipelineInputError
from neural_renderer.renderer.config import RendererConfig
from neural_renderer.storage import read_driving_motion
from neural_renderer.video.mp4 import has_audio


def run(
    tracking_h5: str | Path,
    audio_wav: str | Path,
    out_model: str | Path,
    *,
    cfg: dict[str, Any],
    renderer_cfg: dict[str, Any],
    probe_json: str | Path | None = None,
) -> AudioTrainResult:
    acfg, placement = resolve_audio_config(cfg)
    rcfg = build_dataclass(RendererConfig, renderer_cfg or {})
    if probe_json is not None and Path(probe_json).is_file() and not has_audio(probe_json):
        raise PipelineInputError(
            audio_wav, "no audio track (the video's probe says it has no audio): cannot train an audio model"
        )
    samples = load_audio(audio_wav, acfg.features.sample_rate)
    motion = read_driving_motion(tracking_h5)
    t = rcfg.train
    data = prepare(
        motion,
        samples,
        acfg,
        t.train_frames,
        t.test_frames,
        t.min_train_frames,
        source=tracking_h5,
        times_s=motion.timestamps_s,
    )
    return train_audio(
        data,
        acfg,
        out_model,
        expression_names=motion.expression_names,
        tracking_sha256=sha256_file(tracking_h5),
        placement=placement,
    )
