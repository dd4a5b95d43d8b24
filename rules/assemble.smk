# assemble: tracking.h5 = the cropped frames (cut from the decoded video) + every stage's datasets.


rule assemble:
    input:
        video=raw_video,
        probe=rules.ingest.output.probe,
        track=rules.track.output.h5,
        crop=rules.crop.output.h5,
        fit=rules.fit.output.h5,
        gaze=rules.gaze.output.h5,
    output:
        h5=f"{RESULTS}/{{video}}/tracking.h5",
    log:
        "logs/{video}/assemble.log",
    benchmark:
        "logs/{video}/assemble.benchmark.tsv"
    group:
        "preprocess"
    conda:
        "../envs/track.yaml"
    resources:
        mem_mb=mem_of("assemble"),
        runtime=runtime_of("assemble"),
    params:
        ffmpeg=config["ffmpeg"],
        code=code_hash("assemble"),
    script:
        "../workflow_scripts/assemble.py"
