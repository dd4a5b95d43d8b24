# ingest: probe the raw video (frame timeline, pixel shape, rotation, damage, audio) and extract its audio track
# (16 kHz mono WAV).


rule ingest:
    input:
        video=raw_video,
    output:
        probe=f"{RESULTS}/{{video}}/ingest/probe.json",
        audio=f"{RESULTS}/{{video}}/ingest/audio.wav",
    log:
        "logs/{video}/ingest.log",
    group:
        "preprocess"
    conda:
        "../envs/ingest.yaml"
    resources:
        mem_mb=mem_of("ingest"),
        runtime=runtime_of("ingest"),
    params:
        cfg=cfg("ingest"),
        ffmpeg=config["ffmpeg"],
        code=code_hash("ingest"),
    script:
        "../workflow_scripts/ingest.py"
