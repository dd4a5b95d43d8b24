"""HDF5 storage: one schema (`schema.py`) and atomic, validated reads/writes (`h5io.py`) for every stage."""

from neural_renderer.storage.h5io import (
    assemble_tracking,
    atomic_path,
    open_h5,
    provenance,
    read_attrs,
    read_stage,
    read_timestamps,
    write_stage,
)
from neural_renderer.storage.schema import SCHEMA_VERSION, STAGES, markdown, schema_for, validate_arrays

__all__ = [
    "SCHEMA_VERSION",
    "STAGES",
    "assemble_tracking",
    "atomic_path",
    "markdown",
    "open_h5",
    "provenance",
    "read_attrs",
    "read_stage",
    "read_timestamps",
    "schema_for",
    "validate_arrays",
    "write_stage",
]
