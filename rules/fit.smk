# fit: linear 3D morphable model fitted to all frames at once (shared identity, per-frame expression and pose).


rule fit:
    input:
        crop=rules.crop.output.h5,
        track=rules.track.output.h5,
        model=config["models"]["morphable_model"],
        correspondence=rules.correspondence.output[0],
    output:
        h5=f"{RESULTS}/{{video}}/fit.h5",
    log:
        "logs/{video}/fit.log",
    benchmark:
        "logs/{video}/fit.benchmark.tsv"
    group:
        "preprocess"
    conda:
        "../envs/fit.yaml"
    threads: 2
    resources:
        mem_mb=mem_of("fit"),
        runtime=runtime_of("fit"),
    params:
        cfg=cfg("fit"),
        kind=config["models"]["morphable_model_kind"],
        code=code_hash("fit"),
    script:
        "../workflow_scripts/fit.py"
