"""track: decode the video and run MediaPipe FaceLandmarker on every frame into `track.h5`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.assets import sha256_file
from neural_renderer.config import build_dataclass
from neural_renderer.errors import PipelineInputError
from neural_renderer.progress import progress
from neural_renderer.storage import write_stage
from neural_renderer.tracking import TrackConfig, track_frames
from neural_renderer.tracking.mirror import mirror_averaged
from neural_renderer.video import decode_frames, load_probe


def run(
    video_path: str | Path,
    probe_json: str | Path,
    model_path: str | Path,
    out_h5: str | Path,
    *,
    video: str,
    cfg: dict[str, Any],
    ffmpeg: str | None = None,
) -> float:
    """Track all frames; fail (naming the video) only if no frame has a face. Returns the detection rate.

    `ffmpeg` is unused (frames are decoded in-process); kept so the rule's call stays the same.
    With `mirror_average` the mirrored frames are tracked too and averaged in (``tracking/mirror.py``).
    """
    track_cfg = build_dataclass(TrackConfig, cfg)
    info, sha = load_probe(probe_json)
    times: list[float] = []

    def frames():  # a fresh decode per tracking pass (a second pass runs only when several faces are seen)
        times.clear()
        for t, frame in progress(
            decode_frames(video_path, info), total=info.n_frames or None, desc=f"track {video}", unit="frame"
        ):
            times.append(t)
            yield frame

    track = track_frames(frames, info.fps, model_path, track_cfg)
    if track_cfg.mirror_average:
        width = {"px": info.width}

        def flipped():
            for _, frame in progress(
                decode_frames(video_path, info),
                total=info.n_frames or None,
                desc=f"track {video} (mirrored)",
                unit="frame",
            ):
                width["px"] = frame.shape[1]  # as decoded (after any rotation), the width the landmarks live in
                yield np.ascontiguousarray(frame[:, ::-1])

        mirrored = track_frames(flipped, info.fps, model_path, track_cfg)
        track = mirror_averaged(track, mirrored, width["px"], model_path)
    n = len(track.valid)
    if n == 0:
        raise PipelineInputError(video_path, "no frame could be decoded")
    if not track.valid.any():
        raise PipelineInputError(video_path, f"no face detected in any of its {n} frames")
    rate = float(track.valid.mean())
    write_stage(
        out_h5,
        "track",
        {
            "landmarks": track.landmarks.astype(np.float32, copy=False),
            "blendshapes": track.blendshapes.astype(np.float32),
            "blendshape_names": np.asarray(track.blendshape_names, dtype=str),
            "transforms": track.transforms.astype(np.float32),
            "valid": track.valid.astype(bool),
            "timestamps_s": np.asarray(times, dtype=np.float64),
        },
        video=video,
        source_path=str(video_path),
        source_sha256=sha,
        stage_config=cfg,
        attrs={
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "detection_rate": rate,
            "model_sha256": sha256_file(model_path),
            "timeline": "resampled" if info.resampled else "source",
            "sar": info.sar,
            "damage": info.damage,
            "n_faces_max": int(track.n_faces.max()) if track.n_faces is not None and n else 0,
        },
    )
    return rate
