# track: MediaPipe FaceLandmarker on every decoded frame (478 landmarks, 52 blendshapes, head transform).


rule track:
    input:
        video=raw_video,
        probe=rules.ingest.output.probe,
        model=config["models"]["face_landmarker"],
    output:
        h5=f"{RESULTS}/{{video}}/track.h5",
    log:
        "logs/{video}/track.log",
    benchmark:
        "logs/{video}/track.benchmark.tsv"
    group:
        "preprocess"
    conda:
        "../envs/track.yaml"
    threads: 2
    resources:
        mem_mb=mem_of("track"),
        runtime=runtime_of("track"),
    params:
        cfg=cfg("track"),
        ffmpeg=config["ffmpeg"],
        code=code_hash("track"),
    script:
        "../workflow_scripts/track.py"
