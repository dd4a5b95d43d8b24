# Shared helpers for every rule: video discovery, result paths, per-stage params.
import functools
import os
import sys
from pathlib import Path

from neural_renderer.atomic import sweep_stale_temporaries
from neural_renderer.config import stage_config
from neural_renderer.errors import PipelineInputError
from neural_renderer.outputs import AUDIO, BY_STEM, CROSS, DRIVING, REAL_TEST_FEATURES, SELF, wildcard_constraints
from neural_renderer.sections import effective_section
from neural_renderer.resources import mem_mb as sized_mem_mb
from neural_renderer.resources import runtime_min as sized_runtime_min
from neural_renderer.resources import video_size
from neural_renderer.stages.code_version import code_hash
from neural_renderer.video import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, VIDEO_NAME_PATTERN, scan_videos

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


def size_of(wildcards):
    """The video's frame count and frame size: ingest/probe.json once ingest ran, else the raw video's header (a
    group job is submitted before its ingest stage runs)."""
    return video_size(f"{RESULTS}/{wildcards.video}/ingest/probe.json", VIDEOS[wildcards.video])


def mem_of(rule):
    """`mem_mb` of a per-video rule: from the video's size, times the attempt (neural_renderer/resources.py)."""
    return lambda wildcards, attempt: sized_mem_mb(rule, size_of(wildcards), attempt)


def runtime_of(rule):
    """`runtime` (minutes) of a per-video rule: from the video's size, times the attempt."""
    return lambda wildcards, attempt: sized_runtime_min(rule, size_of(wildcards), attempt)


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


# The workflow keys that choose the targets, read once (defaults: the config dataclasses).
RENDERER_ENABLED = effective_section(config, "renderer")["enabled"]
METRICS_ENABLED = effective_section(config, "metrics")["enabled"]
REENACT_PAIRS = effective_section(config, "reenact")["pairs"]
AUDIO_TARGETS = effective_section(config, "audio")["targets"]


def renderer_targets():
    """Trained renderer and test renders per video, when `renderer.enabled`."""
    if not RENDERER_ENABLED:
        return []
    return [
        target
        for video in sorted(VIDEOS)
        for target in (f"{RESULTS}/{video}/renderer/model.pt", SELF.path(RESULTS, video, suffix=".mp4"))
    ]


def renderer_variant(video):
    """The renderer variant of a video (full | cnn), names the method in the metrics table."""
    return effective_section(config, "renderer", video)["model"]["variant"]


def rendered_outputs():
    """(kind, target video, driver) of every rendered output the run makes (kinds: neural_renderer.outputs)."""
    outputs = [(SELF, video, None) for video in sorted(VIDEOS)] if RENDERER_ENABLED else []
    outputs += [(CROSS, p["target"], p["driver"]) for p in REENACT_PAIRS]
    outputs += [(AUDIO, target, clip) for target in AUDIO_TARGETS for clip in sorted(AUDIO_CLIPS)]
    return outputs


def rendered_files(suffix, kinds=(SELF, CROSS, AUDIO)):
    """One file per rendered output of the given kinds, e.g. suffix ".mp4" or ".metrics.json"."""
    return [kind.path(RESULTS, video, driver, suffix) for kind, video, driver in rendered_outputs() if kind in kinds]


def reenact_targets():
    """One reenactment per configured (driver, target) pair."""
    return rendered_files(".mp4", kinds=(CROSS,))


def audio_targets():
    """Every clip in audio_dir rendered by every configured audio target identity."""
    return rendered_files(".mp4", kinds=(AUDIO,))


def metrics_targets():
    """Metrics of every rendered output plus the summary table, when `metrics.enabled`."""
    if not METRICS_ENABLED or not rendered_outputs():
        return []
    return [f"{RESULTS}/metrics/summary.csv"]


# --- metrics (rules/metrics.smk) ---

# The metrics rules serve every kind of rendered output: {RESULTS}/{video}/{folder}/{stem}.h5 (neural_renderer.outputs).
RENDERED_WILDCARDS = wildcard_constraints(VIDEO_NAME_PATTERN)
FEATURES_IGNORE = ("enabled", "lpips_net")  # read by the metrics jobs alone: changing them keeps the cached features


def csim_backend_of(video):
    """The CSIM backend the features use (metrics.csim_backend auto: ArcFace once its file exists): a param, so that
    fetching the ArcFace model later reruns the features instead of mixing backends. Resolved once per run (and per
    overridden video), not per job: at thousands of videos a per-job call is a measurable share of the DAG build."""
    from neural_renderer.config import build_dataclass
    from neural_renderer.metrics.config import MetricsConfig, resolve_csim_backend

    return resolve_csim_backend(build_dataclass(MetricsConfig, video_stage_config("metrics", video)))


def arcface_model_of(video):
    """csim_backend arcface: the ONNX file as an input (rule fetch_arcface downloads it to the default path)."""
    if csim_backend_of(video) != "arcface":
        return []
    return [effective_section(config, "metrics", video)["arcface_model"]]


CSIM_BACKEND = per_video(csim_backend_of)
# Re-extracted motion is fitted as the video was (metrics/motion.py); changing fit or gaze reruns the features.
MOTION_CFG = per_video(lambda video: {s: video_stage_config(s, video) for s in ("fit", "gaze")})
ARCFACE_MODEL = per_video(arcface_model_of)


def metrics_inputs(wildcards):
    """An output's frames and features, the target's real test features, and its frame-for-frame reference: the
    real frames themselves (self) or the driving frames' features (cross), as its kind describes."""
    kind = BY_STEM[wildcards.stem]
    video, base = wildcards.video, f"{RESULTS}/{wildcards.video}/{wildcards.folder}/{wildcards.stem}"
    inputs = {
        "rendered": f"{base}.h5",
        "generated": f"{base}.features.h5",
        "real": f"{RESULTS}/{video}/{REAL_TEST_FEATURES}",
    }
    if kind.paired:
        inputs["tracking"] = f"{RESULTS}/{video}/tracking.h5"
    elif kind.reference is DRIVING:
        driver = kind.driver_of(video, wildcards.folder, VIDEO_NAME_PATTERN)
        inputs["driving"] = kind.reference_features(RESULTS, video, driver)
    return inputs


def check_named_videos():
    """Reenactment pairs and audio targets must name videos in raw_dir (a typo would otherwise be a MissingInput)."""
    named = [
        (f"reenact.pairs[{i}].{role}", p[role]) for i, p in enumerate(REENACT_PAIRS) for role in ("driver", "target")
    ]
    named += [(f"audio.targets[{i}]", t) for i, t in enumerate(AUDIO_TARGETS)]
    unknown = [f"{where}={name!r}" for where, name in named if name not in VIDEOS]
    if unknown:
        raise PipelineInputError(
            None,
            f"config names videos that are not in {config['raw_dir']}/: {', '.join(unknown)}; known: {sorted(VIDEOS)}",
        )


check_named_videos()
