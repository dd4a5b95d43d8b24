# Model files: downloaded and checksum-verified when the configured path is missing (tests point at local copies).
# Sources are pinned in neural_renderer/assets.py; PORTRAIT_ASSET_MIRROR (a URL or folder) replaces them by a mirror.
# The downloads run where Snakemake runs (on a cluster: the login node, which usually has internet; compute nodes
# often have none).


localrules:
    download_face_landmarker,
    build_ict_model,
    fetch_arcface,


rule download_face_landmarker:
    output:
        "resources/models/face_landmarker.task",
    log:
        "logs/models/face_landmarker.log",
    conda:
        "../envs/ingest.yaml"
    resources:
        mem_mb=500,
        runtime=30,
    params:
        name="face_landmarker",
    script:
        "../workflow_scripts/download_asset.py"


rule build_ict_model:
    # Downloads the ICT-FaceKit archive of commit da5f95a6 (MIT), verifies the OBJs it uses by sha256 and converts
    # them to the face-region npz.
    output:
        "resources/models/ict_face_light_face.npz",
    log:
        "logs/models/ict_face_light_face.log",
    conda:
        "../envs/fit.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        name="ict_facekit",
    script:
        "../workflow_scripts/build_ict_model.py"


rule fetch_arcface:
    # insightface's buffalo_l pack (verified sha256), of which only the ArcFace model is kept: CSIM with
    # metrics.csim_backend arcface (or auto, once this file exists). Non-commercial research use only.
    output:
        "resources/models/w600k_r50.onnx",
    log:
        "logs/models/w600k_r50.log",
    conda:
        "../envs/metrics.yaml"
    resources:
        mem_mb=1000,
        runtime=30,
    script:
        "../workflow_scripts/fetch_arcface.py"


rule correspondence:
    # MediaPipe-landmark <-> morphable-model-vertex correspondences, computed once per (model, landmarker) pair.
    input:
        model=config["models"]["morphable_model"],
        landmarker=config["models"]["face_landmarker"],
    output:
        f"{RESULTS}/_models/correspondence.npz",
    log:
        "logs/models/correspondence.log",
    conda:
        "../envs/fit.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        kind=config["models"]["morphable_model_kind"],
        code=code_hash("correspondence"),
    script:
        "../workflow_scripts/correspondence.py"
