# Shared helpers for every rule: video discovery, result paths, per-stage params.
import functools
import os
import sys
from pathlib import Path

from neural_renderer.atomic import sweep_stale_temporaries
from neural_renderer.config import check_overrides, stage_config
from neural_renderer.errors import PipelineInputError
from neural_renderer.renderer.config import RendererConfig
from neural_renderer.stages.code_version import code_hash
from neural_renderer.video import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, VIDEO_NAME_PATTERN, scan_videos

check_overrides(config)  # beyond the JSON schema, which the Snakefile has validated (filling defaults)

# HDF5's file locking fails or hangs on many shared file systems (NFS, Lustre); our writes are atomic renames of
# private temporary files, so the locks protect nothing here. Jobs inherit this, locally and on a cluster.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

RESULTS = config["results_dir"]
VIDEOS, _skipped = scan_videos(config["raw_dir"])
AUDIO_CLIPS, _skipped_audio = scan_videos(config["audio_dir"], AUDIO_EXTENSIONS + VIDEO_EXTENSIONS, what="audio clip")
if workflow.is_main_process:  # not again inside each cluster job
    for message in _skipped + _skipped_audio:  # a badly named file is skipped; every other video runs
        print(f"portrait pipeline: WARNING: {message}", file=sys.stderr)
    if not VIDEOS:
        print(
            f"portrait pipeline: no videos in {config['raw_dir']}/: copy portrait videos there (mp4, mov, avi, mkv, webm; "
            "names of letters, digits, '_', '-', '.') and run snakemake again (the demo clip: git checkout data/raw/sample.mp4)",
            file=sys.stderr,
        )
    # Temporary files of jobs killed by SIGKILL (their cleanup never ran); live jobs' files are left alone.
    for path in sweep_stale_temporaries(RESULTS):
        print(f"portrait pipeline: removed the stale temporary file {path} (its job was killed)", file=sys.stderr)


wildcard_constraints:
    video=VIDEO_NAME_PATTERN,
    driver=VIDEO_NAME_PATTERN,
    clip=VIDEO_NAME_PATTERN,


def raw_video(wildcards):
    return str(VIDEOS[wildcards.video])


# Videos with per-video overrides; every other video gets the same stage sections.
OVERRIDDEN = frozenset(config.get("overrides") or {})


@functools.cache
def _stage_config(stage, video):
    return stage_config(config, stage, video)


def video_stage_config(stage, video):
    """The stage's section for a video, merged once per (stage, overridden video): the DAG asks for it per job, and
    videos without overrides share one copy (do not modify it)."""
    return _stage_config(stage, video if video in OVERRIDDEN else None)


def cfg(stage, drop=()):
    """Params: the stage's config section with the video's overrides (changes rerun this stage only).

    `drop` leaves out keys a rule does not use, so changing them does not rerun it (e.g. render settings, training).
    Without any overrides the section is one value for every job, not a function Snakemake calls (and inspects) per job.
    """

    return per_video(lambda video: {k: v for k, v in video_stage_config(stage, video).items() if k not in drop})


def per_video(value):
    """Params from `value(video)`: one value for every job when no video has overrides, else a function of the job
    (Snakemake calls it per job: a video without overrides gets the value computed once for all of them)."""
    if not OVERRIDDEN:
        return value(None)
    values = {}

    def of_job(wildcards):
        key = wildcards.video if wildcards.video in OVERRIDDEN else None
        if key not in values:
            values[key] = value(key)
        return values[key]

    return of_job


def all_targets():
    return (
        [
            target
            for video in sorted(VIDEOS)
            for target in (f"{RESULTS}/{video}/tracking.h5", f"{RESULTS}/{video}/qc/stats.json")
        ]
        + renderer_targets()
        + reenact_targets()
        + audio_targets()
        + metrics_targets()
    )


def renderer_targets():
    """Trained renderer and test renders per video, when `renderer.enabled` (schema default: off)."""
    if not config.get("renderer", {}).get("enabled", False):
        return []
    return [
        target
        for video in sorted(VIDEOS)
        for target in (f"{RESULTS}/{video}/renderer/model.pt", f"{RESULTS}/{video}/renderer/test_render.mp4")
    ]


def renderer_variant(video):
    """The renderer variant of a video (full | cnn), names the method in the metrics table."""
    return video_stage_config("renderer", video).get("model", {}).get("variant", RendererConfig().model.variant)


def reenact_targets():
    """One reenactment per configured (driver, target) pair."""
    return [
        f"{RESULTS}/{p['target']}/reenact/{p['driver']}/reenacted.mp4"
        for p in config.get("reenact", {}).get("pairs", [])
    ]


def audio_targets():
    """Every clip in audio_dir rendered by every configured audio target identity."""
    return [
        f"{RESULTS}/{target}/audio_render/{clip}/audio_render.mp4"
        for target in config.get("audio", {}).get("targets", [])
        for clip in sorted(AUDIO_CLIPS)
    ]


def rendered_outputs():
    """(kind, rendered frames file without .h5) of every rendered output the run makes."""
    outputs = (
        [("self", f"{RESULTS}/{video}/renderer/test_render") for video in sorted(VIDEOS)]
        if config.get("renderer", {}).get("enabled", False)
        else []
    )
    outputs += [("cross", t[: -len(".mp4")]) for t in reenact_targets()]
    outputs += [("audio", t[: -len(".mp4")]) for t in audio_targets()]
    return outputs


def metrics_targets():
    """Metrics of every rendered output plus the summary table, when `metrics.enabled`."""
    if not config.get("metrics", {}).get("enabled", False) or not rendered_outputs():
        return []
    return [f"{RESULTS}/metrics/summary.csv"]


def check_named_videos():
    """Reenactment pairs and audio targets must name videos in raw_dir (a typo would otherwise be a MissingInput)."""
    named = [
        (f"reenact.pairs[{i}].{role}", p[role])
        for i, p in enumerate(config.get("reenact", {}).get("pairs", []))
        for role in ("driver", "target")
    ]
    named += [(f"audio.targets[{i}]", t) for i, t in enumerate(config.get("audio", {}).get("targets", []))]
    unknown = [f"{where}={name!r}" for where, name in named if name not in VIDEOS]
    if unknown:
        raise PipelineInputError(
            None,
            f"config names videos that are not in {config['raw_dir']}/: {', '.join(unknown)}; known: {sorted(VIDEOS)}",
        )


check_named_videos()
