"""Writing H.264 mp4s of rendered frames (with the driving video's or clip's audio muxed in), and whether a probed
video has audio to mux: shared by the renderer, reenactment, audio-driven rendering and `portrait render`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from neural_renderer.atomic import atomic_path


class FfmpegWriter:
    """rgb24 frames through a pipe into libx264 (imageio-ffmpeg's binary unless one is configured)."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        fps: float,
        ffmpeg: str,
        crf: int = 18,
        audio: Path | None = None,
        audio_start_s: float = 0.0,
    ):
        cmd = [
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            f"{fps}",
            "-i",
            "-",
        ]
        if audio is not None:
            cmd += [
                "-ss",
                f"{audio_start_s:.6f}",
                "-i",
                str(audio),
                "-map",
                "0:v",
                "-map",
                "1:a?",
                "-c:a",
                "aac",
                "-shortest",
            ]
        cmd += ["-c:v", "libx264", "-crf", str(crf), "-pix_fmt", "yuv420p", "-f", "mp4", str(path)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self.path = path

    def write(self, frame: np.ndarray) -> None:
        self.proc.stdin.write(np.ascontiguousarray(frame).tobytes())

    def close(self) -> None:
        self.proc.stdin.close()
        err = self.proc.stderr.read().decode(errors="replace")
        if self.proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {self.path}: {err[-500:]}")


def write_mp4(
    path: str | Path,
    n_frames: int,
    frame_of,
    width: int,
    height: int,
    fps: float,
    *,
    ffmpeg: str,
    crf: int = 18,
    audio: Path | None = None,
    audio_start_s: float = 0.0,
) -> None:
    """Atomically write `frame_of(i)` (i = 0..n_frames-1, (height, width, 3) uint8) as an H.264 mp4, muxing the first
    audio stream of `audio` (from `audio_start_s`, cut to the video) when given."""
    with atomic_path(path) as tmp:
        writer = FfmpegWriter(tmp, width, height, fps, ffmpeg, crf, audio, audio_start_s)
        try:
            for i in range(n_frames):
                writer.write(frame_of(i))
        finally:
            writer.close()


def has_audio(probe_json: str | Path | None) -> bool:
    """Whether the ingest stage's `probe.json` says the raw video has an audio stream (False when there is none)."""
    if probe_json is None or not Path(probe_json).is_file():
        return False
    return bool(json.loads(Path(probe_json).read_text()).get("has_audio", False))
