# gaze: per-frame gaze (pitch, yaw, unit vectors) from the iris landmarks and the fitted head; blinks from the track.


rule gaze:
    input:
        track=rules.track.output.h5,
        crop=rules.crop.output.h5,
        fit=rules.fit.output.h5,
        model=config["models"]["morphable_model"],
    output:
        h5=f"{RESULTS}/{{video}}/gaze.h5",
    log:
        "logs/{video}/gaze.log",
    group:
        "preprocess"
    conda:
        "../envs/fit.yaml"
    resources:
        mem_mb=mem_of("gaze"),
        runtime=runtime_of("gaze"),
    params:
        cfg=cfg("gaze"),
        kind=config["models"]["morphable_model_kind"],
        code=code_hash("gaze"),
    script:
        "../workflow_scripts/gaze.py"
