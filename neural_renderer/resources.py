"""Cluster resources of the per-video preprocessing jobs from the video's size: memory (MB) and runtime (minutes).

Problem: fixed requests either waste a cluster (a 20 s clip asking for hours and gigabytes) or fail on long videos
(before the fit solved its frames in windows, its memory grew by about 0.19 MB per frame: the paper's 18,138 frames
needed about 3.9 GB, over the profile's old 4,000 MB with no margin), and a job killed for memory was retried with
more time only.

Structure: `COSTS` holds a linear model per rule, fitted to measured peak memory and seconds: issue #23 (one clip at
536 and 6,444 frames, 2-core machine, one core per job, Snakemake `benchmark:` files) and benchmarks/bench_scale.py
(d6 looped to 1,000 frames, the same machine under load from other jobs, docs/BENCHMARKS.md). The slope of memory
comes from the issue's two lengths; base and time per frame take the larger of the two sources:

    rule      peak RSS MB at 536 / 1,000 / 6,444 frames   s at 1,000 / 6,444   model
    track     322 / 586 / 491                             35.8 / 186           557 + 0.029 MB/frame, 36 ms/frame
    fit       587 / 781 / 1,685 (whole-sequence solve)    66.0 / 52            780 + 0.015 MB/frame, 66 ms/frame
    assemble  193 / 375 / 197                             28.4 / 99            375 MB, 28 ms/frame

The fit now solves its frames in windows (`fit.window_frames`): benchmarks/bench_fit_windows.py measured 733 MB at
1,000 and 864 MB at 10,000 frames (d6 looped; bench_scale: 794 MB at 1,000), hence 780 MB + 0.015 MB/frame.

ingest, crop, gaze and qc were not measured separately (together 13 s of the 350 s at 6,444 frames, i.e. about
2 ms/frame; bench_scale: 0.5 s each at 1,000 frames; ingest decodes every frame once, given 3 ms/frame); their
memory is modelled from the arrays they hold (landmarks: 478 x 3 float32 = 5.7 kB per frame, a few copies) as
0.05 MB/frame over a 500 MB base, which over-asks (bench_scale at 1,000 frames: 357, 358 and 395 MB). The decoding rules
(ingest, track, assemble) also hold a few decoded frames (PyAV's frame threads: `DECODE_FRAMES` of them) and take
per-frame time in proportion to the pixels beyond 1080p (decode dominates there; MediaPipe sees a downscaled image).

A request is the model times a margin (`MEMORY_MARGIN`, `TIME_MARGIN`: other CPUs, shared nodes, file systems),
rounded up, at least a floor, and times `attempt` (Snakemake's retry count, 1 on the first try): a job that SLURM
kills for memory (OUT_OF_MEMORY) or time comes back with twice, then three times, both. The size comes from
`ingest/probe.json` (exact, once ingest ran) or else from the container's header (`VideoSize.from_header`: a
group job is submitted before its ingest stage runs; the header's frame count is the muxer's, within a few frames).

Dropped: Snakemake's default `mem_mb` from the input files' size (it grows with the compressed video, not the
frame count, and sums every input per job: slow DAG at scale); per-rule constants sized for the longest video
(the paper's 18,138 frames would make every short clip ask for 6 GB).
"""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

FULL_HD = 1920 * 1080
DECODE_FRAMES = 8  # decoded RGB frames alive at once in a decoding job (PyAV frame threads, queue)
MEMORY_MARGIN = 1.5
TIME_MARGIN = 3.0
STARTUP_MIN = 5.0  # imports, model loading, file system latency


@dataclass(frozen=True)
class Cost:
    """Peak memory base_mb + mb_per_frame * T (+ decode buffers), seconds s_per_frame * T (scaled by pixels over
    1080p when `decodes`); requests at least min_mb and min_minutes."""

    base_mb: float
    mb_per_frame: float
    s_per_frame: float
    decodes: bool = False
    min_mb: int = 500
    min_minutes: int = 10


COSTS: dict[str, Cost] = {
    "ingest": Cost(300, 0.001, 0.003, decodes=True),
    "track": Cost(557, 0.029, 0.036, decodes=True, min_mb=1000),
    "crop": Cost(500, 0.05, 0.0005),
    "fit": Cost(780, 0.015, 0.066, min_mb=1000),
    "gaze": Cost(500, 0.05, 0.0005),
    "assemble": Cost(375, 0.001, 0.028, decodes=True),
    "qc": Cost(500, 0.01, 0.0005),
}
SIZED_RULES = frozenset(COSTS)


@dataclass(frozen=True)
class VideoSize:
    n_frames: int
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @classmethod
    def from_probe(cls, probe_json: str | Path) -> VideoSize:
        info = json.loads(Path(probe_json).read_text())
        return cls(int(info["n_frames"]), int(info["width"]), int(info["height"]))

    @classmethod
    def from_header(cls, video: str | Path) -> VideoSize:
        """The container's own frame count (or duration x rate) and coded size, without decoding."""
        import av

        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            n = int(stream.frames or 0)
            if n <= 0:
                duration_s = (container.duration or 0) / 1e6
                n = math.ceil(duration_s * float(stream.average_rate or stream.guessed_rate or 30))
            return cls(n, int(stream.width), int(stream.height))


def video_size(probe_json: str | Path, raw_video: str | Path) -> VideoSize:
    """From probe.json when ingest has written it, else from the raw video's header (each read once per run: the DAG
    asks for every job's resources)."""
    try:
        mtime = os.stat(probe_json).st_mtime_ns
    except FileNotFoundError:
        return _header(str(raw_video))
    return _probe(str(probe_json), mtime)


@functools.cache
def _header(video: str) -> VideoSize:
    """A header that cannot be read (a corrupt file, not a video) sizes the job at the floors: its ingest job then
    fails alone with its one-line message, instead of the whole DAG failing while it asks for resources."""
    try:
        return VideoSize.from_header(video)
    except Exception:  # noqa: BLE001 - av raises several error types for files that are not videos
        return VideoSize(0, 0, 0)


@functools.cache
def _probe(path: str, mtime_ns: int) -> VideoSize:
    return VideoSize.from_probe(path)


def mem_mb(rule: str, size: VideoSize, attempt: int = 1) -> int:
    """sbatch --mem (MB) for `rule` on a video of `size`, at try `attempt` (1, 2, ...)."""
    c = COSTS[rule]
    need = c.base_mb + c.mb_per_frame * size.n_frames
    if c.decodes:
        need += DECODE_FRAMES * size.pixels * 3 / 1e6
    return attempt * max(c.min_mb, 100 * math.ceil(MEMORY_MARGIN * need / 100))


def runtime_min(rule: str, size: VideoSize, attempt: int = 1) -> int:
    """sbatch -t (minutes) for `rule` on a video of `size`, at try `attempt`."""
    c = COSTS[rule]
    seconds = c.s_per_frame * size.n_frames * (max(1.0, size.pixels / FULL_HD) if c.decodes else 1.0)
    return attempt * max(c.min_minutes, math.ceil(STARTUP_MIN + TIME_MARGIN * seconds / 60))
