"""Decode frames in-process (PyAV) along the timeline `probe_video` planned, and extract the audio track (ffmpeg).

Frames are RGB uint8 at the display shape: square pixels (SAR applied by swscale: area averaging when shrinking,
bicubic when enlarging) and upright (the display matrix applied with np.rot90). Square-pixel frames are converted
exactly as the former `ffmpeg -pix_fmt rgb24` pipe did (same swscale conversion: identical bytes).

`decode_frames` replays the probe's plan: it stops at the damage the probe found (`cut_s`) and, for a resampled
timeline, picks for output frame k the source frame nearest to `start_s + k / fps`. Nothing runs in another process
or thread of ours, so dropping an iterator early just closes the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError
from neural_renderer.video.ffmpeg_exe import QUIET, check_readable, input_url, resolve_ffmpeg, stderr_tail
from neural_renderer.video.probe import VideoInfo
from neural_renderer.video.source import DecodeLog, decoded_frames, frame_time_s, open_video, sample_aspect_ratio

log = logging.getLogger(__name__)

_TIME_EPS = 1e-6  # s: float noise when comparing frame times


def iter_frames(path: str | Path, info: VideoInfo, ffmpeg: str | None = None) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames (info.height, info.width, 3) of the planned timeline (`ffmpeg` is unused)."""
    for _, frame in decode_frames(path, info):
        yield frame


def decode_frames(path: str | Path, info: VideoInfo) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time in s, RGB frame) for the info.n_frames frames of the timeline; a mismatch with the probe raises."""
    width, height = int(info.width), int(info.height)
    if width <= 0 or height <= 0:
        raise PipelineInputError(path, f"invalid frame size {width}x{height} in the probe")
    source = _source_frames(path, info)
    n = 0
    try:
        if not info.resampled:
            for n, (t, frame) in enumerate(source, start=1):  # noqa: B007 - n is checked after the loop
                yield t, frame
        else:
            half = 0.5 / info.fps - _TIME_EPS
            current = next(source, None)
            upcoming = next(source, None)
            while current is not None and n < info.n_frames:
                t_k = info.start_s + n / info.fps
                if upcoming is not None and upcoming[0] <= t_k + half:
                    current, upcoming = upcoming, next(source, None)
                    continue
                yield t_k, current[1].copy()
                n += 1
    finally:
        source.close()
    if n != info.n_frames:
        raise PipelineInputError(
            path, f"decoded {n} frames but the probe planned {info.n_frames} (file changed since ingest?)"
        )


def _source_frames(path: str | Path, info: VideoInfo) -> Iterator[tuple[float, np.ndarray]]:
    """The source frames the timeline uses: (time, upright square-pixel RGB), stopping at the probe's cut."""
    k = info.rotation // 90
    record = DecodeLog()
    with open_video(path) as (container, stream):
        scaled = sample_aspect_ratio(stream) != Fraction(1)
        size = (info.height, info.width) if k % 2 else (info.width, info.height)  # before rotation
        count = 0
        for frame in decoded_frames(container, stream, record):
            if frame.pts is None:
                continue
            t = frame_time_s(int(frame.pts), stream, container)
            if count >= info.source_frames or (info.cut_s is not None and t >= info.cut_s - _TIME_EPS):
                break
            if scaled:
                shrink = size[0] < frame.width
                image = frame.to_ndarray(
                    format="rgb24", width=size[0], height=size[1], interpolation="AREA" if shrink else "BICUBIC"
                )
            else:
                image = frame.to_ndarray(format="rgb24")
            if image.shape[:2] != (size[1], size[0]):
                got = f"{image.shape[1]}x{image.shape[0]}"
                raise PipelineInputError(path, f"frame {count} is {got}, the probe said {size[0]}x{size[1]}")
            if k:
                image = np.ascontiguousarray(np.rot90(image, k))
            count += 1
            yield t, image


def has_audio_stream(path: str | Path) -> bool:
    import av

    check_readable(path)
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except av.error.FFmpegError as exc:
        raise PipelineInputError(path, f"not a readable file ({exc})") from None


def extract_audio(path: str | Path, out_wav: str | Path, sample_rate: int = 16000, ffmpeg: str | None = None) -> None:
    """Write the first audio stream as a mono 16-bit PCM WAV at `sample_rate`, atomically.

    Sample 0 is at time 0 of the file's clock (the frames' `timestamps_s` clock): an audio stream that starts late is
    padded with silence at the front (`aresample=async=1:first_pts=0` only fixes the start; no stretching).
    Raises PipelineInputError when the video has no audio stream or ffmpeg cannot decode it.
    """
    import ffmpeg as ffmpeg_python

    exe = resolve_ffmpeg(ffmpeg)
    if not has_audio_stream(path):
        raise PipelineInputError(path, "the video has no audio stream")
    try:
        with atomic_path(out_wav) as tmp:
            (
                ffmpeg_python.input(input_url(path))
                .output(
                    str(tmp),
                    map="0:a:0",
                    vn=None,
                    ac=1,
                    ar=int(sample_rate),
                    acodec="pcm_s16le",
                    format="wav",
                    map_metadata=-1,
                    fflags="+bitexact",
                    af="aresample=async=1:first_pts=0",
                    **{"flags:a": "+bitexact"},
                )  # fmt: skip
                .global_args(*QUIET, "-nostats", "-loglevel", "error")
                .overwrite_output()
                .run(cmd=exe, capture_stdout=True, capture_stderr=True)
            )
    except ffmpeg_python.Error as exc:
        raise PipelineInputError(path, f"cannot extract the audio track: {stderr_tail(exc.stderr)}") from None
