# renderer: per-identity neural renderer (resumable) and self-reenactment of the test frames.
# renderer.preset (auto | seed | preview) is resolved inside the job: seed on a CUDA node, preview on a CPU.
# Checkpoints, losses.jsonl and sample PNGs go to results/{video}/renderer/ beside the model but are NOT outputs,
# so a rerun (or a SLURM retry / requeue) after a crash resumes from the last checkpoint instead of deleting it.


rule train_renderer:
    input:
        tracking=rules.assemble.output.h5,
    output:
        model=f"{RESULTS}/{{video}}/renderer/model.pt",
        curves=report(
            f"{RESULTS}/{{video}}/renderer/training_curves.png",
            category="Renderer",
            subcategory="{video}",
            caption="../report/renderer_curves.rst",
        ),
        samples=report(
            f"{RESULTS}/{{video}}/renderer/test_samples.png",
            category="Renderer",
            subcategory="{video}",
            caption="../report/renderer_samples.rst",
        ),
    log:
        "logs/{video}/train_renderer.log",
    benchmark:
        "logs/{video}/train_renderer.benchmark.tsv"
    retries: 2
    conda:
        "../envs/renderer.yaml"
    threads: 4
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=lambda wildcards, attempt: attempt * 720,
    params:
        cfg=cfg("renderer", drop=("enabled", "render")),
        work_dir=f"{RESULTS}/{{video}}/renderer",  # a string: Snakemake fills in the wildcard (no per-job call)
        code=code_hash("train_renderer"),
    script:
        "../workflow_scripts/train_renderer.py"


rule render:
    input:
        tracking=rules.assemble.output.h5,
        model=rules.train_renderer.output.model,
        probe=rules.ingest.output.probe,
        video=raw_video,
    output:
        mp4=report(
            SELF.pattern(RESULTS, ".mp4"),
            category="Renderer",
            subcategory="{video}",
            caption="../report/renderer_test_render.rst",
        ),
        h5=SELF.pattern(RESULTS, ".h5"),
        side_by_side=report(
            f"{RESULTS}/{{video}}/renderer/test_side_by_side.mp4",
            category="Renderer",
            subcategory="{video}",
            caption="../report/renderer_side_by_side.rst",
        ),
    log:
        "logs/{video}/render.log",
    conda:
        "../envs/renderer.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    params:
        cfg=cfg("renderer", drop=("enabled",)),
        ffmpeg=config["ffmpeg"],
        code=code_hash("render"),
    script:
        "../workflow_scripts/render.py"
