"""Probe a video by decoding it once in-process (PyAV): size, pixel shape, rotation, frame times, damage -> VideoInfo.

The probe decodes every frame (without converting pixels), because three facts are only known after decoding: which
frames are really decodable, their presentation times, and the display matrix. From them it plans the frame timeline
every later stage indexes, and `iter_frames` replays that plan.

Conventions:
- Pixel shape. `stored_width` x `stored_height` are the coded frame size and `sar` its sample aspect ratio (pixel
  width : pixel height). Frames are decoded at the display shape, i.e. with square pixels: the width is scaled to
  round(stored_width * sar) (ffmpeg's `scale=iw*sar:ih` convention; a 512x480 video with SAR 15:16 becomes 480x480).
- Rotation. `rotation` is the display-matrix rotation in degrees counter-clockwise (as ffmpeg prints it and as
  `ffmpeg -display_rotation` sets it), normalised to 0, 90, 180 or 270. `width` x `height` is the size of the frames
  `iter_frames` yields: square-pixel size, swapped for 90/270 (frames are turned upright).
- Time. Frame times are seconds since the start of the file (the container's start time: the clock players, the
  audio track and `ffmpeg -ss` use).
- Variable frame rate. A stream whose frame intervals differ by more than 2% (or one tick) is VFR. Every later stage
  assumes frame i is shown for 1/fps (renders, audio features, crop smoothing), so a VFR video is resampled to a
  constant rate: output frame k, at `start_s + k / fps`, is the source frame nearest to that time (the earlier one on
  a tie), so a 30 fps stretch keeps every frame and a 15 fps stretch shows each frame twice. `fps` is the configured
  `ingest.fps`, else the stream's nominal rate (its finest frame rate), else 1 / the median interval. A configured
  `ingest.fps` resamples constant-rate videos too; otherwise they keep their own frames and times. Resampling is
  logged.
- Damage. A packet the decoder rejects, a frame flagged corrupt, or a packet that produced no frame, followed by
  decodable frames, is mid-stream damage: `probe_video` raises PipelineInputError with a one-line reason, unless
  `allow_partial`, in which case only the frames before the damage are kept (`cut_s`, `damage` say so and QC
  reports it). Damage with nothing decodable after it is a truncated file: its frames are kept with a warning.
- `duration_s` = n_frames / fps: the span of the frame timeline that every later stage indexes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from neural_renderer.errors import PipelineInputError
from neural_renderer.video.source import DecodeLog, decoded_frames, open_video, sample_aspect_ratio

log = logging.getLogger(__name__)

VFR_TOLERANCE = 0.02  # relative deviation of a frame interval from the median that makes a stream VFR


@dataclass(frozen=True)
class VideoInfo:
    """What the later stages need to know about a raw video (see the module docstring for conventions)."""

    path: str
    width: int  # of the decoded frames: square pixels, upright
    height: int
    fps: float
    n_frames: int  # frames of the timeline (after resampling / cutting)
    duration_s: float
    rotation: int
    has_audio: bool
    codec: str
    stored_width: int = 0  # coded size, before SAR and rotation
    stored_height: int = 0
    sar: str = "1:1"
    start_s: float = 0.0  # time of frame 0
    vfr: bool = False  # the source's frame intervals vary
    resampled: bool = False  # frames are the constant-rate timeline start_s + k / fps (else the source's frames)
    source_frames: int = 0  # decoded source frames the timeline is made of
    cut_s: float | None = None  # source frames at or after this time are not used (damage)
    damage: str = ""  # what is wrong with the stream, "" when nothing

    def timestamps(self, source_times_s: np.ndarray | None = None) -> np.ndarray:
        """(n_frames,) float64 frame times: the resampled grid, or the given source frame times."""
        if self.resampled or source_times_s is None:
            return self.start_s + np.arange(self.n_frames, dtype=np.float64) / self.fps
        return np.asarray(source_times_s, dtype=np.float64)


def probe_video(
    path: str | Path, *, fps: float | None = None, allow_partial: bool = False, ffmpeg: str | None = None
) -> VideoInfo:
    """Decode `path` once and plan its frame timeline; bad or damaged input -> PipelineInputError.

    `fps`: resample to this constant rate (None: keep constant-rate videos as they are). `allow_partial`: keep the
    frames before mid-stream damage instead of failing. `ffmpeg` is accepted for API compatibility and unused (PyAV
    decodes with the FFmpeg libraries in its wheel).
    """
    del ffmpeg
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise PipelineInputError(path, f"ingest.fps must be a positive number, got {fps}")
    record = DecodeLog()
    pts: list[int] = []
    corrupt: list[bool] = []
    last_duration = 0
    rotation_ccw: float | None = None
    stored: tuple[int, int] | None = None
    with open_video(path) as (container, stream):
        for frame in decoded_frames(container, stream, record):
            if frame.pts is None:
                continue
            pts.append(int(frame.pts))
            corrupt.append(bool(frame.is_corrupt))
            last_duration = int(frame.duration or 0)
            if stored is None:
                stored = (int(frame.width), int(frame.height))
                rotation_ccw = float(frame.rotation or 0)
        if not pts or stored is None:
            detail = record.errors[-1][1] if record.errors else record.read_error or "no frames"
            raise PipelineInputError(path, f"no frame could be decoded ({detail})")
        tb = stream.time_base
        start = Fraction(container.start_time or 0, 1_000_000)

        def time_of(p: int) -> float:
            return float(p * tb - start)

        times = np.array([time_of(p) for p in pts])
        sar = sample_aspect_ratio(stream)
        nominal = float(stream.guessed_rate or 0)
        average = float(stream.average_rate or 0)
        has_audio = bool(container.streams.audio)
        codec = str(stream.codec_context.name)
    keep, cut, damage = find_damage(path, pts, corrupt, record, time_of)
    if damage and keep < len(pts) and not allow_partial and _mid_stream(pts, cut):
        raise PipelineInputError(path, f"{damage}; set ingest.allow_partial: true to keep the {keep} frames before it")
    if keep == 0:
        raise PipelineInputError(path, f"{damage}; no frame before it can be kept")
    if damage:
        log.warning("%s: %s; keeping the %d frames before it", path, damage, keep)
    ticks = np.asarray(pts[:keep], dtype=np.int64)
    times = times[:keep]
    intervals = np.diff(ticks)
    median = float(np.median(intervals)) if len(intervals) else 0.0
    vfr = bool(len(intervals) and np.abs(intervals - median).max() > max(1.0, VFR_TOLERANCE * median))
    cut_s = None if cut is None else time_of(cut)
    native = 1.0 / (median * float(tb)) if median > 0 else (nominal or average or 25.0)
    if fps is not None:
        rate = float(fps)
    else:
        rate = _nominal_rate(nominal, intervals, tb, native) if vfr else (average or native)
    resampled = vfr or (fps is not None and abs(rate - (average or native)) > 1e-9 * rate)
    if resampled:
        step = (last_duration if last_duration > 0 else median) * float(tb)
        end = times[-1] + (step if step > 0 else 1.0 / rate)
        if cut_s is not None:
            end = min(end, cut_s)
        n_frames = max(1, math.ceil((end - times[0]) * rate - 1e-6))
        log.warning(
            "%s: %s frame rate (%d frames over %.3f s); resampled to a constant %.6g fps: %d frames",
            path, "variable" if vfr else "constant", keep, end - times[0], rate, n_frames,
        )  # fmt: skip
    else:
        n_frames = keep
    width, height = display_size(stored, sar)
    rotation = _normalise_rotation(path, rotation_ccw or 0.0)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(
        path=str(path),
        width=width,
        height=height,
        fps=rate,
        n_frames=n_frames,
        duration_s=n_frames / rate,
        rotation=rotation,
        has_audio=has_audio,
        codec=codec,
        stored_width=stored[0],
        stored_height=stored[1],
        sar=f"{sar.numerator}:{sar.denominator}",
        start_s=float(times[0]),
        vfr=vfr,
        resampled=resampled,
        source_frames=keep,
        cut_s=cut_s,
        damage=damage,
    )


def load_probe(probe_json: str | Path) -> tuple[VideoInfo, str]:
    """Read the ingest stage's `probe.json` back into a VideoInfo plus the video's sha256."""
    try:
        record = json.loads(Path(probe_json).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PipelineInputError(probe_json, f"unreadable probe file ({exc})") from None
    names = {f.name for f in dataclasses.fields(VideoInfo)}
    return VideoInfo(**{k: v for k, v in record.items() if k in names}), record["sha256"]


def find_damage(
    path: str | Path, pts: list[int], corrupt: list[bool], record: DecodeLog, time_of: Callable[[int], float]
) -> tuple[int, int | None, str]:
    """(frames to keep, pts where the damage starts or None, one-line description or "").

    Damaged: packets that produced no frame (before the first frame only when the decoder reported errors: otherwise
    they are edit-list or open-GOP lead-in),
    frames flagged corrupt, and, when the decoder or demuxer reported errors, a jump in the frame times larger than
    four median intervals (a demuxer that resynchronised after garbage leaves no lost packets, only a gap).
    """
    decoded = set(pts)
    first = pts[0]
    lost = sorted({p for p in record.packet_pts if p not in decoded and p > first})
    leading = sorted({p for p in record.packet_pts if p not in decoded and p < first})
    bad = set(lost) | {p for p, c in zip(pts, corrupt) if c}
    if leading and record.errors:  # the decoder rejected data before the first frame: the start is damaged
        bad |= set(leading)
    elif leading:
        log.info("%s: %d packets before the first frame produced no frame (edit list or open GOP)", path, len(leading))
    order_breaks = [pts[i] for i in range(1, len(pts)) if pts[i] <= pts[i - 1]]
    bad |= set(order_breaks)
    if record.errors or record.read_error:
        steps = np.diff(np.asarray(pts, dtype=np.int64))
        positive = steps[steps > 0]
        if len(positive):
            median = float(np.median(positive))
            bad |= {pts[i] + 1 for i in np.nonzero(steps > 4 * median)[0]}
    if not bad:
        if record.read_error:
            return len(pts), None, f"the file ends early (truncated?): {record.read_error}"
        return len(pts), None, ""
    cut = min(bad)
    keep = next((i for i, p in enumerate(pts) if p >= cut), len(pts))
    after = [c for p, c in zip(pts, corrupt) if p > cut]
    n_missing = len(lost) + sum(corrupt)
    detail = record.errors[0][1] if record.errors else ("frames flagged corrupt" if any(corrupt) else "frames missing")
    if not after:
        where = f"{time_of(cut):.3f} s (frame {keep})"
        return keep, cut, f"truncated file: nothing decodes from {where} to the end ({detail})"
    return (
        keep,
        cut,
        (
            f"the video stream is damaged at {time_of(cut):.3f} s (frame {keep}): {n_missing} frames are missing or "
            f"corrupt ({detail}) and {len(after)} frames follow"
        ),
    )


def _mid_stream(pts: list[int], cut: int | None) -> bool:
    """Frames (even corrupt ones) come after the damage: more of the file exists, it is not merely cut short."""
    return cut is not None and any(p > cut for p in pts)


def display_size(stored: tuple[int, int], sar: Fraction) -> tuple[int, int]:
    """Square-pixel size of a (width, height) frame with sample aspect ratio `sar` (width scaled, height kept)."""
    width, height = stored
    if sar != 1:
        width = max(1, int(round(width * sar)))
    return width, height


def _nominal_rate(nominal: float, intervals: np.ndarray, tb: Fraction, native: float) -> float:
    """The resampling rate of a VFR stream: its nominal (finest) rate when the frames fit it, else 1/median."""
    finest = 1.0 / (float(intervals[intervals > 0].min()) * float(tb)) if (intervals > 0).any() else native
    if 0 < nominal <= finest * 1.01 and nominal >= native * 0.99:
        return nominal
    return native


def _normalise_rotation(path: str | Path, degrees_ccw: float) -> int:
    rotation = int(round(degrees_ccw)) % 360
    if rotation % 90:
        nearest = int(round(rotation / 90.0)) * 90 % 360
        log.warning("%s: display rotation %.2f deg is not a multiple of 90; using %d", path, degrees_ccw, nearest)
        rotation = nearest
    return rotation
