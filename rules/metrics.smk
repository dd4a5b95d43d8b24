# metrics: features of every set of frames are cached once (real test frames per video, each rendered output, the
# driving frames of each reenactment); one JSON per rendered output; one summary table (CSV + Markdown + plot).

# A rendered output is {RESULTS}/{video}/{sub}/{name}.h5 (self, cross and audio-driven renders respectively).
RENDERED_SUB = rf"renderer|reenact/{VIDEO_NAME_PATTERN}|audio_render/{VIDEO_NAME_PATTERN}"
KIND_OF = {"test_render": "self", "reenacted": "cross", "audio_render": "audio"}
RENDERED_NAME = "|".join(KIND_OF)
FEATURES_IGNORE = ("enabled", "lpips_net")  # options only the metrics rule uses: changing them keeps the features


def csim_backend_of(video):
    """The CSIM backend the features use (metrics.csim_backend auto: ArcFace once its file exists): a param, so that
    fetching the ArcFace model later reruns the features instead of mixing backends. Resolved once per run (and per
    overridden video), not per job."""
    from neural_renderer.config import build_dataclass
    from neural_renderer.metrics.config import MetricsConfig, resolve_csim_backend

    return resolve_csim_backend(build_dataclass(MetricsConfig, video_stage_config("metrics", video)))


def arcface_model_of(video):
    """csim_backend arcface: the ONNX file as an input (rule fetch_arcface downloads it to the default path)."""
    if csim_backend_of(video) != "arcface":
        return []
    from neural_renderer.metrics.config import ARCFACE_DEFAULT

    return [video_stage_config("metrics", video).get("arcface_model") or ARCFACE_DEFAULT]


CSIM_BACKEND = per_video(csim_backend_of)
ARCFACE_MODEL = per_video(arcface_model_of)


rule real_features:
    input:
        tracking=rules.assemble.output.h5,
        landmarker=config["models"]["face_landmarker"],
        model=config["models"]["morphable_model"],
        correspondence=rules.correspondence.output[0],
        arcface=ARCFACE_MODEL,
    output:
        f"{RESULTS}/{{video}}/metrics/real_test.features.h5",
    log:
        "logs/{video}/real_features.log",
    benchmark:
        "logs/{video}/real_features.benchmark.tsv"
    conda:
        "../envs/metrics.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        cfg=cfg("metrics", drop=FEATURES_IGNORE),
        split=per_video(lambda video: video_stage_config("renderer", video).get("train", {})),
        csim=CSIM_BACKEND,
        code=code_hash("metric_features"),
    script:
        "../workflow_scripts/metric_features.py"


rule rendered_features:
    input:
        rendered=f"{RESULTS}/{{video}}/{{sub}}/{{name}}.h5",
        landmarker=config["models"]["face_landmarker"],
        model=config["models"]["morphable_model"],
        correspondence=rules.correspondence.output[0],
        arcface=ARCFACE_MODEL,
    output:
        f"{RESULTS}/{{video}}/{{sub}}/{{name}}.features.h5",
    log:
        "logs/{video}/{sub}/{name}.features.log",
    benchmark:
        "logs/{video}/{sub}/{name}.features.benchmark.tsv"
    wildcard_constraints:
        sub=RENDERED_SUB,
        name=RENDERED_NAME,
    conda:
        "../envs/metrics.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        cfg=cfg("metrics", drop=FEATURES_IGNORE),
        csim=CSIM_BACKEND,
        code=code_hash("metric_features"),
    script:
        "../workflow_scripts/metric_features.py"


rule driving_features:
    input:
        tracking=f"{RESULTS}/{{driver}}/tracking.h5",
        rendered=f"{RESULTS}/{{video}}/reenact/{{driver}}/reenacted.h5",
        landmarker=config["models"]["face_landmarker"],
        model=config["models"]["morphable_model"],
        correspondence=rules.correspondence.output[0],
        arcface=ARCFACE_MODEL,
    output:
        f"{RESULTS}/{{video}}/reenact/{{driver}}/driving.features.h5",
    log:
        "logs/{video}/reenact/{driver}/driving.features.log",
    conda:
        "../envs/metrics.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        cfg=cfg("metrics", drop=FEATURES_IGNORE),
        csim=CSIM_BACKEND,
        code=code_hash("metric_features"),
    script:
        "../workflow_scripts/metric_features.py"


def metrics_inputs(wildcards):
    """Per kind of output: its frames and features, the target's real test features, and what else the kind needs."""
    base = f"{RESULTS}/{wildcards.video}/{wildcards.sub}/{wildcards.name}"
    inputs = {
        "rendered": f"{base}.h5",
        "generated": f"{base}.features.h5",
        "real": f"{RESULTS}/{wildcards.video}/metrics/real_test.features.h5",
    }
    if wildcards.name == "test_render":
        inputs["tracking"] = f"{RESULTS}/{wildcards.video}/tracking.h5"
    elif wildcards.name == "reenacted":
        inputs["driving"] = f"{RESULTS}/{wildcards.video}/{wildcards.sub}/driving.features.h5"
    return inputs


rule metrics:
    input:
        unpack(metrics_inputs),
    output:
        f"{RESULTS}/{{video}}/{{sub}}/{{name}}.metrics.json",
    log:
        "logs/{video}/{sub}/{name}.metrics.log",
    wildcard_constraints:
        sub=RENDERED_SUB,
        name=RENDERED_NAME,
    conda:
        "../envs/metrics.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        cfg=cfg("metrics", drop=("enabled",)),
        kind=lambda wildcards: KIND_OF[wildcards.name],
        driver=lambda wildcards: wildcards.sub.split("/")[-1] if "/" in wildcards.sub else wildcards.video,
        method=per_video(lambda video: "renderer-" + renderer_variant(video)),
        code=code_hash("metrics"),
    script:
        "../workflow_scripts/metrics.py"


rule metrics_summary:
    input:
        [f"{base}.metrics.json" for _, base in rendered_outputs()],
    output:
        csv=report(f"{RESULTS}/metrics/summary.csv", category="Metrics", caption="../report/metrics_table.rst"),
        md=f"{RESULTS}/metrics/summary.md",
        png=report(f"{RESULTS}/metrics/summary.png", category="Metrics", caption="../report/metrics_plot.rst"),
    log:
        "logs/metrics_summary.log",
    conda:
        "../envs/metrics.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=code_hash("metrics"),
    script:
        "../workflow_scripts/metrics_summary.py"
