"""Portrait pipeline: raw portrait videos -> tracked, cropped, 3DMM-fitted HDF5 and a neural renderer.

Every stage's logic lives in a sub-package; the Snakemake rules only call thin entry points.
"""

__version__ = "0.1.0"
