# audio: per-identity N_exp/N_pose networks (audio window -> expression, head pose; after AD-NeRF), trained on the
# renderer's training split, and a portrait rendered from every clip dropped into audio_dir (config audio.targets).


rule train_audio:
    input:
        tracking=rules.assemble.output.h5,
        audio=rules.ingest.output.audio,
        probe=rules.ingest.output.probe,
    output:
        model=f"{RESULTS}/{{video}}/audio/model.pt",
    log:
        "logs/{video}/train_audio.log",
    retries: 2
    conda:
        "../envs/renderer.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=lambda wildcards, attempt: attempt * 120,
    params:
        cfg=cfg("audio", drop=("targets",)),
        renderer=cfg("renderer"),
        code=code_hash("train_audio"),
    script:
        "../workflow_scripts/train_audio.py"


rule audio_render:
    input:
        audio=lambda wildcards: str(AUDIO_CLIPS[wildcards.clip]),
        tracking=rules.assemble.output.h5,
        renderer=rules.train_renderer.output.model,
        audio_model=rules.train_audio.output.model,
    output:
        mp4=report(
            AUDIO.pattern(RESULTS, ".mp4"),
            category="Audio-driven",
            subcategory="{clip} -> {video}",
            caption="../report/audio_render.rst",
        ),
        h5=AUDIO.pattern(RESULTS, ".h5"),
    log:
        "logs/{video}/audio_render/{clip}.log",
    conda:
        "../envs/renderer.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=60,
    params:
        cfg=cfg("audio", drop=("targets",)),
        ffmpeg=config["ffmpeg"],
        code=code_hash("audio_render"),
    script:
        "../workflow_scripts/audio_render.py"
