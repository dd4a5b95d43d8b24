# Shared helpers for every rule: video discovery, result paths, per-stage params.
import os
import sys
from pathlib import Path

from neural_renderer.config import stage_config, validate_config
from neural_renderer.stages.code_version import code_hash
from neural_renderer.video import VIDEO_NAME_PATTERN, discover_videos

validate_config(config)  # overrides and cross-field checks beyond the JSON schema

# HDF5's file locking fails or hangs on many shared file systems (NFS, Lustre); our writes are atomic renames of
# private temporary files, so the locks protect nothing here. Jobs inherit this, locally and on a cluster.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

RESULTS = config["results_dir"]
VIDEOS = discover_videos(config["raw_dir"])
if not VIDEOS:
    print(f"portrait pipeline: no videos in {config['raw_dir']}/ (mp4, mov, avi, mkv, webm)", file=sys.stderr)


wildcard_constraints:
    video=VIDEO_NAME_PATTERN,


def raw_video(wildcards):
    return str(VIDEOS[wildcards.video])


def cfg(stage, drop=()):
    """Params function: the stage's config section with the video's overrides (changes rerun this stage only).

    `drop` leaves out keys a rule does not use, so changing them does not rerun it (e.g. render settings, training).
    """

    def params(wildcards):
        section = stage_config(config, stage, wildcards.video)
        return {k: v for k, v in section.items() if k not in drop}

    return params


def all_targets():
    return [
        target
        for video in sorted(VIDEOS)
        for target in (f"{RESULTS}/{video}/tracking.h5", f"{RESULTS}/{video}/qc/stats.json")
    ] + renderer_targets()


def renderer_targets():
    """Trained renderer and test renders per video, when `renderer.enabled` (schema default: off)."""
    if not config.get("renderer", {}).get("enabled", False):
        return []
    return [
        target
        for video in sorted(VIDEOS)
        for target in (f"{RESULTS}/{video}/renderer/model.pt", f"{RESULTS}/{video}/renderer/test_render.mp4")
    ]
