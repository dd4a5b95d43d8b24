"""In-process demuxing and decoding with PyAV (FFmpeg's libraries inside the `av` wheel), shared by probe and decode.

Decoding in-process gives what the former `ffmpeg ... -f rawvideo pipe:` path lost: each frame's presentation time
(pts), the sample aspect ratio, the display matrix, and which packets failed to decode. It also needs no subprocess
and no stderr-draining thread (that thread crashed the interpreter at exit when a frame iterator was dropped early).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from neural_renderer.errors import PipelineInputError
from neural_renderer.threads import job_threads
from neural_renderer.video.ffmpeg_exe import check_readable

log = logging.getLogger(__name__)


@dataclass
class DecodeLog:
    """What demuxing and decoding saw besides the frames (filled while `decoded_frames` runs)."""

    packet_pts: list[int] = field(default_factory=list)  # pts of every video packet that carries data
    errors: list[tuple[int | None, str]] = field(default_factory=list)  # (packet pts, decoder message)
    read_error: str = ""  # demuxing stopped early: the file ends inside its own index (truncated)


@contextlib.contextmanager
def open_video(path: str | Path) -> Iterator[tuple[object, object]]:
    """(container, first video stream that is not cover art), closed on exit; bad input -> PipelineInputError."""
    import av

    check_readable(path)
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise PipelineInputError(path, f"not a readable video ({_reason(exc)})") from None
    try:
        streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not streams:
            raise PipelineInputError(path, "no video stream")
        stream = streams[0]
        stream.thread_type = "AUTO"  # frame + slice threads; frames still come out in presentation order
        stream.codec_context.thread_count = job_threads()
        yield container, stream
    finally:
        container.close()


def decoded_frames(container, stream, record: DecodeLog) -> Iterator[object]:
    """Every decodable frame (av.VideoFrame) in presentation order; packets and failures go into `record`.

    A packet the decoder rejects is recorded and skipped (the frames it carried are then missing, which the caller
    sees as a gap between packet and frame times). Demuxing that fails mid-file (a truncated file) ends the stream.
    """
    import av

    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError as exc:
            record.read_error = _reason(exc)
            break
        if packet.size and packet.pts is not None and not packet.is_discard:
            record.packet_pts.append(int(packet.pts))
        try:
            yield from packet.decode()  # the final empty packet flushes the decoder
        except av.error.FFmpegError as exc:
            record.errors.append((packet.pts, _reason(exc)))


def frame_time_s(pts: int, stream, container) -> float:
    """Seconds since the start of the file (the container's start time: the clock players and `ffmpeg -ss` use)."""
    start = Fraction(container.start_time or 0, 1_000_000)
    return float(pts * stream.time_base - start)


def sample_aspect_ratio(stream) -> Fraction:
    """The stream's SAR (pixel width / pixel height); 1 when unset."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar:
            return Fraction(sar)
    return Fraction(1)


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__
