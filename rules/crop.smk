# crop: temporally smoothed square crop boxes and crop-space landmarks (the pixels are cut in `assemble`).


rule crop:
    input:
        track=rules.track.output.h5,
    output:
        h5=f"{RESULTS}/{{video}}/crop.h5",
    log:
        "logs/{video}/crop.log",
    params:
        cfg=cfg("crop"),
        code=code_hash("crop"),
    group:
        "preprocess"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/track.yaml"
    script:
        "../workflow_scripts/crop.py"
