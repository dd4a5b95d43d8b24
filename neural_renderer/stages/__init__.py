"""Stage runners: one module per Snakemake rule, reading and writing the stage files.

`workflow_scripts/*.py` only unpack the `snakemake` object and call `run(...)` here, so every stage can also be
run (and tested) without Snakemake.
"""
