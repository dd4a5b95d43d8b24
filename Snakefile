# Portrait pipeline: raw portrait videos in data/raw/ -> tracked, cropped, 3DMM-fitted HDF5 per video, a trained
# renderer per identity, reenactments, audio-driven renders and an evaluation table.
# This file only loads and validates the configuration (defaults: neural_renderer/sections.py) and includes one
# rules/*.smk per stage.
from snakemake.utils import min_version

from neural_renderer.sections import complete_config

min_version("9.0")


configfile: "config.yaml"


# validates against config.schema.yaml; defaults live in the config dataclasses alone
complete_config(config, source=", ".join(map(str, workflow.configfiles)) or None)


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/ingest.smk"
include: "rules/track.smk"
include: "rules/crop.smk"
include: "rules/fit.smk"
include: "rules/gaze.smk"
include: "rules/assemble.smk"
include: "rules/qc.smk"
include: "rules/renderer.smk"
include: "rules/reenact.smk"
include: "rules/audio.smk"
include: "rules/metrics.smk"


rule all:
    default_target: True
    input:
        all_targets(),
