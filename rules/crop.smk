# crop: temporally smoothed square crop boxes and crop-space landmarks (the pixels are cut in `assemble`).


rule crop:
    input:
        track=rules.track.output.h5,
    output:
        h5=f"{RESULTS}/{{video}}/crop.h5",
    log:
        "logs/{video}/crop.log",
    group:
        "preprocess"
    conda:
        "../envs/track.yaml"
    resources:
        mem_mb=mem_of("crop"),
        runtime=runtime_of("crop"),
    params:
        cfg=cfg("crop"),
        code=code_hash("crop"),
    script:
        "../workflow_scripts/crop.py"
