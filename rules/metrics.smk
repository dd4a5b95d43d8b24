# metrics: features of every set of frames are cached once (real test frames per video, each rendered output, the
# driving frames of each reenactment); one JSON per rendered output; one summary table (CSV + Markdown + plot).
# A rendered output is {RESULTS}/{video}/{folder}/{stem}.h5; neural_renderer/outputs.py describes each kind (self,
# cross, audio): its folder and stem, its reference frames and its metrics. Input functions: rules/common.smk.


rule real_features:
    input:
        tracking=rules.assemble.output.h5,
        renderer=rules.train_renderer.output.model,
        landmarker=config["models"]["face_landmarker"],
        model=config["models"]["morphable_model"],
        correspondence=rules.correspondence.output[0],
        arcface=ARCFACE_MODEL,
    output:
        f"{RESULTS}/{{video}}/{REAL_TEST_FEATURES}",
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
        frames="real_test",
        cfg=cfg("metrics", drop=FEATURES_IGNORE),
        motion=MOTION_CFG,
        csim=CSIM_BACKEND,
        code=code_hash("metric_features"),
    script:
        "../workflow_scripts/metric_features.py"


rule rendered_features:
    input:
        rendered=f"{RESULTS}/{{video}}/{{folder}}/{{stem}}.h5",
        landmarker=config["models"]["face_landmarker"],
        model=config["models"]["morphable_model"],
        correspondence=rules.correspondence.output[0],
        arcface=ARCFACE_MODEL,
    output:
        f"{RESULTS}/{{video}}/{{folder}}/{{stem}}.features.h5",
    log:
        "logs/{video}/{folder}/{stem}.features.log",
    benchmark:
        "logs/{video}/{folder}/{stem}.features.benchmark.tsv"
    wildcard_constraints:
        **RENDERED_WILDCARDS,
    conda:
        "../envs/metrics.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=60,
    params:
        frames="rendered",
        cfg=cfg("metrics", drop=FEATURES_IGNORE),
        motion=MOTION_CFG,
        csim=CSIM_BACKEND,
        code=code_hash("metric_features"),
    script:
        "../workflow_scripts/metric_features.py"


rule driving_features:
    input:
        tracking=f"{RESULTS}/{{driver}}/tracking.h5",
        rendered=CROSS.pattern(RESULTS, ".h5"),
        landmarker=config["models"]["face_landmarker"],
        model=config["models"]["morphable_model"],
        correspondence=rules.correspondence.output[0],
        arcface=ARCFACE_MODEL,
    output:
        f"{RESULTS}/{{video}}/{DRIVING.features}",
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
        frames="driving",
        cfg=cfg("metrics", drop=FEATURES_IGNORE),
        motion=MOTION_CFG,
        csim=CSIM_BACKEND,
        code=code_hash("metric_features"),
    script:
        "../workflow_scripts/metric_features.py"


rule metrics:
    input:
        unpack(metrics_inputs),
    output:
        f"{RESULTS}/{{video}}/{{folder}}/{{stem}}.metrics.json",
    log:
        "logs/{video}/{folder}/{stem}.metrics.log",
    wildcard_constraints:
        **RENDERED_WILDCARDS,
    conda:
        "../envs/metrics.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        cfg=cfg("metrics", drop=("enabled",)),
        kind=lambda wildcards: BY_STEM[wildcards.stem].name,
        method=per_video(lambda video: f"renderer-{renderer_variant(video)}"),
        code=code_hash("metrics"),
    script:
        "../workflow_scripts/metrics.py"


rule metrics_summary:
    input:
        rendered_files(".metrics.json"),
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
