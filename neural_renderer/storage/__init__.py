"""HDF5 storage: one schema (`schema.py`), atomic, validated reads/writes (`h5io.py`) for every stage, and the one
typed motion value with its reader (`motion.py`). The only package that imports h5py (with `morphable/io.py`'s BFM
loader)."""

from neural_renderer.storage.h5io import (
    assemble_tracking,
    atomic_path,
    dataset_names,
    frame_reader,
    frames_shape,
    is_hdf5,
    iter_frames,
    open_h5,
    provenance,
    read_attrs,
    read_datasets,
    read_frames,
    read_stage,
    read_timestamps,
    write_stage,
)
from neural_renderer.storage.motion import (
    Motion,
    motion_feature_arrays,
    motion_from_features,
    read_driving_motion,
    read_motion,
)
from neural_renderer.storage.rendered import write_rendered
from neural_renderer.storage.schema import SCHEMA_VERSION, STAGES, markdown, schema_for, validate_arrays

__all__ = [
    "SCHEMA_VERSION",
    "STAGES",
    "Motion",
    "assemble_tracking",
    "atomic_path",
    "dataset_names",
    "frame_reader",
    "frames_shape",
    "is_hdf5",
    "iter_frames",
    "markdown",
    "motion_feature_arrays",
    "motion_from_features",
    "open_h5",
    "provenance",
    "read_attrs",
    "read_datasets",
    "read_driving_motion",
    "read_frames",
    "read_motion",
    "read_stage",
    "read_timestamps",
    "schema_for",
    "validate_arrays",
    "write_rendered",
    "write_stage",
]
