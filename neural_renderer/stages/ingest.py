"""ingest: probe the raw video (frame timeline, pixel shape, damage), record its provenance, extract its audio track.

The audio output always exists so the DAG stays static: a video without audio gets a valid WAV with zero samples,
and `probe.json` says `has_audio: false` (downstream muxing reads that flag, never the WAV's length).
"""

from __future__ import annotations

import dataclasses
import json
import wave
from pathlib import Path
from typing import Any

from neural_renderer import __version__
from neural_renderer.assets import sha256_file
from neural_renderer.config import build_dataclass
from neural_renderer.errors import PipelineInputError
from neural_renderer.storage import atomic_path
from neural_renderer.video import extract_audio, probe_video
from neural_renderer.video.config import IngestConfig

AUDIO_SAMPLE_RATE = 16000


def write_empty_wav(path: str | Path, sample_rate: int = AUDIO_SAMPLE_RATE) -> None:
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)


def run(
    video_path: str | Path,
    probe_json: str | Path,
    audio_wav: str | Path,
    *,
    ffmpeg: str | None = None,
    cfg: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ingest_cfg = build_dataclass(IngestConfig, cfg or {})
    info = probe_video(video_path, fps=ingest_cfg.fps, allow_partial=ingest_cfg.allow_partial)
    if info.n_frames <= 0:
        raise PipelineInputError(video_path, "the video stream has no frames")
    record = {**dataclasses.asdict(info), "sha256": sha256_file(video_path), "software_version": __version__}
    if info.has_audio:
        extract_audio(video_path, audio_wav, sample_rate=AUDIO_SAMPLE_RATE, ffmpeg=ffmpeg)
    else:
        write_empty_wav(audio_wav)
    with atomic_path(probe_json) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    return record
