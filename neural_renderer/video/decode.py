"""Decode frames through a pipe (never to disk) and extract the audio track.

Frames come from `ffmpeg ... -f rawvideo -pix_fmt rgb24 pipe:` with ffmpeg's autorotate on, so they are upright and
of the display size `VideoInfo` reports. `-fps_mode passthrough` makes ffmpeg emit exactly one frame per decoded
frame (the default for rawvideo output would duplicate/drop frames of variable-frame-rate video to a constant
rate), so frame i is the i-th frame of the file and the frame count matches the probe.
"""

from __future__ import annotations

import collections
import logging
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError
from neural_renderer.video.ffmpeg_exe import QUIET, check_readable, input_url, resolve_ffmpeg, stderr_tail
from neural_renderer.video.probe import VIDEO_STREAM, VideoInfo, read_header_ffmpeg

log = logging.getLogger(__name__)

_STDERR_LINES = 40  # kept for error messages; older lines are dropped so a chatty corrupt stream cannot fill memory


def iter_frames(path: str | Path, info: VideoInfo, ffmpeg: str | None = None) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames (info.height, info.width, 3), one per decoded frame, streamed from ffmpeg.

    The subprocess is killed when the generator is closed early (break, exception, garbage collection). ffmpeg
    failing, or the stream ending mid-frame, raises PipelineInputError with ffmpeg's last stderr lines. Fewer frames
    than probed is accepted (logged): the caller records the real count.
    """
    import ffmpeg as ffmpeg_python

    exe = resolve_ffmpeg(ffmpeg)
    check_readable(path)
    width, height = int(info.width), int(info.height)
    if width <= 0 or height <= 0:
        raise PipelineInputError(path, f"invalid frame size {width}x{height} in the probe")
    frame_bytes = width * height * 3
    stream = (
        ffmpeg_python.input(input_url(path))
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", map=VIDEO_STREAM, fps_mode="passthrough", an=None, sn=None, dn=None)
        .global_args(*QUIET, "-nostats", "-loglevel", "error")
    )
    proc = stream.run_async(cmd=exe, pipe_stdout=True, pipe_stderr=True)
    stderr_lines: collections.deque[bytes] = collections.deque(maxlen=_STDERR_LINES)
    # Drain stderr concurrently: a full stderr pipe would block ffmpeg while we block on stdout (deadlock).
    drain = threading.Thread(target=_drain, args=(proc.stderr, stderr_lines), daemon=True)
    drain.start()
    n = 0
    try:
        while True:
            buf = bytearray(frame_bytes)
            got = _read_into(proc.stdout, buf)
            if got == 0:
                break
            if got < frame_bytes:
                proc.wait()
                drain.join()
                raise PipelineInputError(
                    path,
                    f"decoded stream ended mid-frame after {n} frames ({got} of {frame_bytes} bytes; "
                    f"expected {width}x{height}): {stderr_tail(b''.join(stderr_lines))}",
                )
            # bytearray-backed: writable and no copy.
            yield np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)
            n += 1
        returncode = proc.wait()
        drain.join()
        if returncode != 0:
            raise PipelineInputError(path, f"ffmpeg failed (exit {returncode}) after {n} frames: {stderr_tail(b''.join(stderr_lines))}")
        if n == 0:
            raise PipelineInputError(path, f"no frame could be decoded: {stderr_tail(b''.join(stderr_lines))}")
        if n != info.n_frames:
            log.warning("%s: decoded %d frames, probe counted %d; %s", path, n, info.n_frames, stderr_tail(b"".join(stderr_lines)))
        elif stderr_lines:
            log.warning("%s: ffmpeg reported decoding errors: %s", path, stderr_tail(b"".join(stderr_lines)))
    finally:
        _stop(proc)
        drain.join(timeout=5)
        proc.stderr.close()


def _read_into(pipe, buf: bytearray) -> int:
    """Fill `buf` from `pipe`; returns the bytes read (< len(buf) only at end of stream)."""
    view = memoryview(buf)
    total = 0
    while total < len(buf):
        got = pipe.readinto(view[total:])
        if not got:
            break
        total += got
    return total


def _drain(pipe, lines: collections.deque[bytes]) -> None:
    for line in iter(pipe.readline, b""):
        lines.append(line)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    for pipe in (proc.stdout, proc.stdin):
        if pipe is not None:
            pipe.close()
    proc.wait()


def extract_audio(path: str | Path, out_wav: str | Path, sample_rate: int = 16000, ffmpeg: str | None = None) -> None:
    """Write the first audio stream as a mono 16-bit PCM WAV at `sample_rate`, atomically.

    Raises PipelineInputError when the video has no audio stream or ffmpeg cannot decode it.
    """
    import ffmpeg as ffmpeg_python

    exe = resolve_ffmpeg(ffmpeg)
    header = read_header_ffmpeg(path, exe)
    if not header.has_audio:
        raise PipelineInputError(path, "the video has no audio stream")
    try:
        with atomic_path(out_wav) as tmp:
            (
                ffmpeg_python.input(input_url(path))
                .output(
                    str(tmp), map="0:a:0", vn=None, ac=1, ar=int(sample_rate), acodec="pcm_s16le", format="wav",
                    map_metadata=-1, fflags="+bitexact", **{"flags:a": "+bitexact"},
                )  # fmt: skip
                .global_args(*QUIET, "-nostats", "-loglevel", "error")
                .overwrite_output()
                .run(cmd=exe, capture_stdout=True, capture_stderr=True)
            )
    except ffmpeg_python.Error as exc:
        raise PipelineInputError(path, f"cannot extract the audio track: {stderr_tail(exc.stderr)}") from None
