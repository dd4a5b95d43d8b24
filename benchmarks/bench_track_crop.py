"""Throughput of decode + track + crop on one video, and which part dominates.

    python benchmarks/bench_track_crop.py [VIDEO] [--model face_landmarker.task] [--resolution 512] [--max-frames N]

Runs the two passes the pipeline runs: `track` (decode -> MediaPipe) and `assemble` (decode -> crop with the smoothed
boxes), plus a decode-only pass for reference. The time spent getting the next decoded frame is measured inside
each pass (PyAV decodes in-process; its frame threads work ahead while MediaPipe runs).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neural_renderer.crop import CropConfig, compute_crop_boxes, crop_frame
from neural_renderer.tracking import track_frames
from neural_renderer.video import iter_frames, probe_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


class Timed:
    """Wrap an iterator and accumulate the time spent waiting in next()."""

    def __init__(self, it: Iterator[np.ndarray]):
        self.it, self.seconds, self.count = it, 0.0, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            start = time.perf_counter()
            try:
                item = next(self.it)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - start
            self.count += 1
            yield item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(SHARED / "testdata" / "videos" / "d6.mp4"))
    parser.add_argument("--model", default=str(SHARED / "models" / "face_landmarker.task"))
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args()

    info = probe_video(args.video)
    limit = args.max_frames

    def frames() -> Iterator[np.ndarray]:
        return itertools.islice(iter_frames(args.video, info), limit)

    start = time.perf_counter()
    n_decoded = sum(1 for _ in frames())
    t_decode_only = time.perf_counter() - start

    decode1 = Timed(frames())
    start = time.perf_counter()
    track = track_frames(decode1, info.fps, args.model)
    t_track_pass = time.perf_counter() - start
    t_mediapipe = t_track_pass - decode1.seconds

    cfg = CropConfig(resolution=args.resolution)
    start = time.perf_counter()
    boxes = compute_crop_boxes(track.landmarks, track.valid, (info.width, info.height), cfg, fps=info.fps)
    t_boxes = time.perf_counter() - start

    decode2 = Timed(frames())
    t_crop = 0.0
    start_pass = time.perf_counter()
    for box, frame in zip(boxes, decode2):
        start = time.perf_counter()
        crop_frame(frame, box, cfg.resolution)
        t_crop += time.perf_counter() - start
    t_crop_pass = time.perf_counter() - start_pass

    n = track.n_frames
    one_pass = decode1.seconds + t_mediapipe + t_boxes + t_crop
    pipeline = t_track_pass + t_boxes + t_crop_pass
    parts = {"decode (PyAV, in-process)": decode1.seconds, "mediapipe": t_mediapipe, "boxes": t_boxes, "crop": t_crop}
    print(f"video {args.video}: {info.width}x{info.height}, {n} frames @ {info.fps:g} fps; crop {cfg.resolution}px")
    print(f"detection rate {track.detection_rate:.3f}")
    print(f"decode only: {n_decoded / t_decode_only:8.1f} frames/s")
    for name, seconds in parts.items():
        print(f"  {name:28s} {1000 * seconds / n:7.2f} ms/frame  {100 * seconds / one_pass:5.1f} %")
    print(f"decode+track+crop, one decode: {n / one_pass:8.1f} frames/s")
    print(f"as the pipeline runs it (track pass + assemble pass, two decodes): {n / pipeline:8.1f} frames/s")
    print(f"dominated by: {max(parts, key=parts.get)}")


if __name__ == "__main__":
    main()
