"""Probe a video: display size, fps, frame count, rotation, audio, codec -> `VideoInfo`.

Two paths give the same `VideoInfo`: ffprobe's JSON when an ffprobe is available (beside the configured ffmpeg, or on
PATH), else the stream summary ffmpeg prints for `ffmpeg -i` (imageio-ffmpeg ships no ffprobe). In both, `n_frames`
is counted, not read from the header: a stream-copy pass through ffmpeg counts the packets that are actually
readable, which stays right for truncated files and containers without a frame count (mkv, webm).

Conventions:
- `rotation` is the display-matrix rotation in degrees counter-clockwise, as ffmpeg/ffprobe print it and as
  `ffmpeg -display_rotation` sets it, normalised to 0, 90, 180 or 270 (a legacy clockwise `rotate=90` tag is 270).
- `width`, `height` are the display size: swapped for 90/270, i.e. the size of the frames `iter_frames` yields
  (ffmpeg's autorotate applies the rotation).
- `fps` is the average frame rate (`avg_frame_rate`, else `r_frame_rate`). ffmpeg prints it with two decimals, so the
  fallback snaps values within 0.005 of an NTSC rate (n * 1000/1001) to that rate; other non-integer rates can
  differ from ffprobe's by < 0.005.
- `duration_s` = n_frames / fps: the span of the frame timeline that every later stage indexes.
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from neural_renderer.errors import PipelineInputError
from neural_renderer.video.ffmpeg_exe import QUIET, check_readable, find_ffprobe, input_url, resolve_ffmpeg, stderr_tail

log = logging.getLogger(__name__)

# ffmpeg stream specifier for "first video stream that is not an attached picture (cover art)".
VIDEO_STREAM = "0:V:0"
NTSC_BASES = (24, 30, 48, 60, 120, 240)


@dataclass(frozen=True)
class VideoInfo:
    """What the later stages need to know about a raw video (see the module docstring for conventions)."""

    path: str
    width: int
    height: int
    fps: float
    n_frames: int
    duration_s: float
    rotation: int
    has_audio: bool
    codec: str


@dataclass(frozen=True)
class StreamHeader:
    """The header facts of the first video stream plus audio presence, before frame counting."""

    coded_width: int
    coded_height: int
    fps: float
    rotation: int
    has_audio: bool
    codec: str
    header_frames: int | None = None  # frame count the container claims (ffprobe's nb_frames), if any


def probe_video(path: str | Path, ffmpeg: str | None = None) -> VideoInfo:
    """Probe `path` with ffprobe when one is available, else with ffmpeg alone; bad input -> PipelineInputError."""
    exe = resolve_ffmpeg(ffmpeg)
    ffprobe = find_ffprobe(exe)
    if ffprobe is not None:
        return probe_with_ffprobe(path, ffprobe, ffmpeg=exe)
    return probe_with_ffmpeg(path, ffmpeg=exe)


def probe_with_ffmpeg(path: str | Path, ffmpeg: str | None = None) -> VideoInfo:
    """The ffmpeg-only path: parse the `ffmpeg -i` summary, then count packets."""
    exe = resolve_ffmpeg(ffmpeg)
    header = read_header_ffmpeg(path, exe)
    return _finish(path, header, exe)


def probe_with_ffprobe(path: str | Path, ffprobe: str, ffmpeg: str | None = None) -> VideoInfo:
    """The ffprobe path: parse ffprobe's JSON streams, then count packets with ffmpeg (same count as the fallback)."""
    import ffmpeg as ffmpeg_python

    check_readable(path)
    try:
        data = ffmpeg_python.probe(input_url(path), cmd=ffprobe)
    except ffmpeg_python.Error as exc:
        raise PipelineInputError(path, f"not a readable video (ffprobe: {stderr_tail(exc.stderr)})") from None
    header = header_from_ffprobe(path, data)
    return _finish(path, header, resolve_ffmpeg(ffmpeg))


def _finish(path: str | Path, header: StreamHeader, ffmpeg: str) -> VideoInfo:
    n_frames = count_frames(path, ffmpeg)
    if header.header_frames is not None and header.header_frames != n_frames:
        log.warning("%s: container claims %d frames but %d are readable (truncated or edited file?)", path, header.header_frames, n_frames)
    width, height = header.coded_width, header.coded_height
    if header.rotation in (90, 270):
        width, height = height, width
    return VideoInfo(
        path=str(path),
        width=width,
        height=height,
        fps=header.fps,
        n_frames=n_frames,
        duration_s=n_frames / header.fps,
        rotation=header.rotation,
        has_audio=header.has_audio,
        codec=header.codec,
    )


# ---------------------------------------------------------------------------------------------------------------
# ffprobe JSON


def header_from_ffprobe(path: str | Path, data: dict[str, Any]) -> StreamHeader:
    """Pure: ffprobe `-show_streams` JSON -> StreamHeader."""
    streams = data.get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    if not videos:
        raise PipelineInputError(path, "no video stream")
    v = videos[0]
    fps = _fraction(v.get("avg_frame_rate")) or _fraction(v.get("r_frame_rate"))
    if not fps:
        raise PipelineInputError(path, "video stream has no frame rate")
    rotation_ccw: float | None = None
    for side in v.get("side_data_list", []) or []:
        if "rotation" in side:
            rotation_ccw = float(side["rotation"])
            break
    if rotation_ccw is None and "rotate" in v.get("tags", {}):
        rotation_ccw = -float(v["tags"]["rotate"])  # legacy tag is clockwise
    nb = v.get("nb_frames")
    return StreamHeader(
        coded_width=int(v["width"]),
        coded_height=int(v["height"]),
        fps=fps,
        rotation=_normalise_rotation(path, rotation_ccw or 0.0),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        codec=str(v.get("codec_name", "unknown")),
        header_frames=int(nb) if nb not in (None, "", "N/A") and int(nb) > 0 else None,
    )


def _fraction(text: str | None) -> float | None:
    if not text or text in ("0/0", "N/A"):
        return None
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return float(value) if value > 0 else None


# ---------------------------------------------------------------------------------------------------------------
# ffmpeg -i summary

_STREAM_RE = re.compile(r"^\s*Stream #0:\d+\S*: (Video|Audio|Subtitle|Data|Attachment): (.*)$")
_SIZE_RE = re.compile(r"(?:^|, )(\d+)x(\d+)(?=[ ,]|$)")
_RATE_RE = r"(\d+(?:\.\d+)?)(k?) {unit}\b"
_DISPLAYMATRIX_RE = re.compile(r"display ?matrix: rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)
_ROTATE_TAG_RE = re.compile(r"^\s*rotate\s*:\s*(-?\d+(?:\.\d+)?)\s*$")


def read_header_ffmpeg(path: str | Path, ffmpeg: str) -> StreamHeader:
    """Run `ffmpeg -i path` (which exits non-zero by design: no output) and parse its summary."""
    check_readable(path)
    proc = subprocess.run([ffmpeg, *QUIET, "-i", input_url(path)], capture_output=True, check=False)
    text = proc.stderr.decode("utf-8", "replace")
    if "Input #0" not in text:
        raise PipelineInputError(path, f"not a readable video (ffmpeg: {stderr_tail(text, 3)})")
    return header_from_ffmpeg_stderr(path, text)


def header_from_ffmpeg_stderr(path: str | Path, text: str) -> StreamHeader:
    """Pure: the `ffmpeg -i` summary -> StreamHeader (first non-cover-art video stream; its side data/metadata)."""
    video: str | None = None
    video_block: list[str] = []
    has_audio = False
    in_video_block = False
    for line in text.splitlines():
        m = _STREAM_RE.match(line)
        if m:
            kind, desc = m.groups()
            has_audio |= kind == "Audio"
            in_video_block = video is None and kind == "Video" and "(attached pic)" not in desc
            if in_video_block:
                video = desc
            continue
        if in_video_block:
            if not line.startswith("    "):  # back at the input/output level
                in_video_block = False
            else:
                video_block.append(line)
    if video is None:
        raise PipelineInputError(path, "no video stream")
    codec = video.split(maxsplit=1)[0].rstrip(",") if video.strip() else "unknown"
    size = _SIZE_RE.search(video)
    if size is None:
        raise PipelineInputError(path, f"cannot read the frame size from ffmpeg's stream line {video!r}")
    fps = _rate(video, "fps") or _rate(video, "tbr")
    if not fps:
        raise PipelineInputError(path, "video stream has no frame rate")
    rotation_ccw = 0.0
    for line in video_block:
        if m := _DISPLAYMATRIX_RE.search(line):
            rotation_ccw = float(m.group(1))
            break
        if m := _ROTATE_TAG_RE.match(line):
            rotation_ccw = -float(m.group(1))
    return StreamHeader(
        coded_width=int(size.group(1)),
        coded_height=int(size.group(2)),
        fps=_snap_ntsc(fps),
        rotation=_normalise_rotation(path, rotation_ccw),
        has_audio=has_audio,
        codec=codec,
    )


def _rate(desc: str, unit: str) -> float | None:
    m = re.search(_RATE_RE.format(unit=unit), desc)
    if not m:
        return None
    value = float(m.group(1)) * (1000 if m.group(2) else 1)
    return value if value > 0 else None


def _snap_ntsc(fps: float) -> float:
    """Undo ffmpeg's two-decimal printing for the NTSC rates (29.97 -> 30000/1001) so both probe paths agree."""
    for base in NTSC_BASES:
        exact = base * 1000 / 1001
        if abs(fps - exact) < 0.005:
            return exact
    return fps


def _normalise_rotation(path: str | Path, degrees_ccw: float) -> int:
    rotation = int(round(degrees_ccw)) % 360
    if rotation % 90:
        nearest = int(round(rotation / 90.0)) * 90 % 360
        log.warning("%s: display rotation %.2f deg is not a multiple of 90; using %d", path, degrees_ccw, nearest)
        rotation = nearest
    return rotation


# ---------------------------------------------------------------------------------------------------------------
# frame counting


def count_frames(path: str | Path, ffmpeg: str) -> int:
    """Count the readable packets of the first video stream with a stream copy (fast: no decoding)."""
    cmd = [
        ffmpeg, *QUIET, "-nostats", "-loglevel", "error", "-progress", "pipe:1",
        "-i", input_url(path), "-map", VIDEO_STREAM, "-c", "copy", "-f", "null", "-",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise PipelineInputError(path, f"cannot read the video stream (ffmpeg exit {proc.returncode}: {stderr_tail(proc.stderr)})")
    counts = re.findall(rb"^frame=(\d+)\s*$", proc.stdout, flags=re.MULTILINE)
    if not counts:
        raise PipelineInputError(path, f"ffmpeg reported no frame count ({stderr_tail(proc.stderr)})")
    if proc.stderr.strip():
        log.warning("%s: the video stream has errors (truncated or corrupt?): %s", path, stderr_tail(proc.stderr))
    return int(counts[-1])

