# reenact: a driving video's expression, head pose and gaze on a target identity's trained renderer (config
# reenact.pairs). Output under the target: results/{target}/reenact/{driver}/.


rule reenact:
    input:
        driver_tracking=f"{RESULTS}/{{driver}}/tracking.h5",
        driver_probe=f"{RESULTS}/{{driver}}/ingest/probe.json",
        driver_video=lambda wildcards: str(VIDEOS[wildcards.driver]),
        target_tracking=f"{RESULTS}/{{video}}/tracking.h5",
        model=f"{RESULTS}/{{video}}/renderer/model.pt",
    output:
        mp4=report(
            CROSS.pattern(RESULTS, ".mp4"),
            category="Reenactment",
            subcategory="{driver} -> {video}",
            caption="../report/reenact.rst",
        ),
        h5=CROSS.pattern(RESULTS, ".h5"),
    log:
        "logs/{video}/reenact/{driver}.log",
    conda:
        "../envs/renderer.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    params:
        cfg=cfg("reenact", drop=("pairs",)),
        ffmpeg=config["ffmpeg"],
        code=code_hash("reenact"),
    script:
        "../workflow_scripts/reenact.py"
