# qc: a contact sheet (landmarks, fitted model, gaze) and tracking statistics per video, shown in the report.


rule qc:
    input:
        tracking=rules.assemble.output.h5,
        model=config["models"]["morphable_model"],
    output:
        sheet=report(
            f"{RESULTS}/{{video}}/qc/contact_sheet.png",
            category="Tracking QC",
            subcategory="{video}",
            caption="../report/qc_sheet.rst",
        ),
        stats=report(
            f"{RESULTS}/{{video}}/qc/stats.json",
            category="Tracking QC",
            subcategory="{video}",
            caption="../report/qc_stats.rst",
        ),
    log:
        "logs/{video}/qc.log",
    group:
        "preprocess"
    conda:
        "../envs/qc.yaml"
    resources:
        mem_mb=mem_of("qc"),
        runtime=runtime_of("qc"),
    params:
        cfg=cfg("qc"),
        kind=config["models"]["morphable_model_kind"],
        code=code_hash("qc"),
    script:
        "../workflow_scripts/qc.py"
