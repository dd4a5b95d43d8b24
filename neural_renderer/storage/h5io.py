"""Atomic, schema-checked HDF5 reads and writes.

Every file is written to a temporary name in the destination directory and renamed into place only when it is
complete, so a killed job never leaves a file that looks finished (Snakemake would otherwise trust it).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import itertools
import json
import logging
import shutil
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neural_renderer import __version__
from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError
from neural_renderer.storage.schema import (
    COMMON_ATTRS,
    FRAMES,
    MERGED_STAGES,
    SCHEMA_VERSION,
    schema_for,
    validate_arrays,
)

log = logging.getLogger(__name__)

PER_FRAME_CHUNK = 256  # frames per chunk for small per-frame arrays: one read gives a useful window


def _common_attrs(stage: str, video: str, source_path: str, source_sha256: str, stage_config: dict) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "stage": stage,
        "video": video,
        "software_version": __version__,
        "source_path": str(source_path),
        "source_sha256": source_sha256,
        "stage_config": json.dumps(stage_config, sort_keys=True, default=str),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def _write_dataset(group: h5py.Group, name: str, array: np.ndarray, per_frame: bool) -> None:
    if array.dtype.kind in "UOS":
        group.create_dataset(name, data=np.asarray(array, dtype=object), dtype=h5py.string_dtype())
        return
    kwargs: dict[str, Any] = {}
    if per_frame and array.ndim >= 1 and array.shape[0] > 0:
        per_chunk = 1 if array.ndim == 4 else min(array.shape[0], PER_FRAME_CHUNK)  # images: one frame per chunk
        kwargs["chunks"] = (per_chunk,) + array.shape[1:]
        kwargs["compression"] = "gzip"
        kwargs["compression_opts"] = 4
    group.create_dataset(name, data=array, **kwargs)


def _write_attrs(obj: h5py.HLObject, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        obj.attrs[key] = value


def write_stage(
    path: str | Path,
    stage: str,
    arrays: dict[str, np.ndarray],
    *,
    video: str,
    source_path: str,
    source_sha256: str,
    stage_config: dict,
    attrs: dict[str, Any] | None = None,
) -> None:
    """Validate `arrays` against the stage's schema and write them atomically with the required attributes."""
    schema = schema_for(stage)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    validate_arrays(stage, arrays)
    attrs = dict(attrs or {})
    missing = set(schema.attrs) - set(attrs)
    if missing:
        raise ValueError(f"stage {stage!r}: missing attributes {sorted(missing)}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write_attrs(f, _common_attrs(stage, video, source_path, source_sha256, stage_config))
        _write_attrs(f, attrs)
        for name, spec in schema.datasets.items():
            if name in arrays:  # validated: only optional datasets may be absent
                _write_dataset(f, name, arrays[name], spec.per_frame)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_attrs(path: str | Path, group: str = "/") -> dict[str, Any]:
    with open_h5(path) as f:
        return {k: _decode(v) for k, v in f[group].attrs.items()}


def read_stage(
    path: str | Path, stage: str, group: str = "/", names: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """Read the datasets of a stage file (or of a stage's group inside `tracking.h5`) into memory: all of them, or
    only ``names`` (a stage that needs a few small arrays of a long video need not hold its per-frame landmarks);
    optional datasets the file lacks are left out."""
    schema = schema_for(stage)
    wanted = None if names is None else set(names)
    if wanted is not None and not wanted <= set(schema.datasets):
        raise ValueError(f"{sorted(wanted - set(schema.datasets))} are not datasets of the {stage!r} stage")
    out: dict[str, np.ndarray] = {}
    with open_h5(path) as f:
        g = f[group]
        if g.attrs.get("stage") not in (stage, None) and group == "/":
            raise PipelineInputError(path, f"is a {g.attrs.get('stage')!r} file, expected {stage!r}")
        for name, spec in schema.datasets.items():
            if wanted is not None and name not in wanted:
                continue
            if name not in g and spec.optional:
                continue
            if name not in g:
                raise PipelineInputError(path, f"dataset {group.rstrip('/')}/{name} missing (schema {stage!r})")
            data = g[name]
            out[name] = data.asstr()[()] if spec.dtype == "str" else data[()]
            if spec.dtype == "str":
                out[name] = np.asarray(out[name], dtype=str)
    return out


def open_h5(path: str | Path) -> h5py.File:
    """Open read-only with a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(path, "file not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise PipelineInputError(path, f"not a readable HDF5 file ({exc})") from exc


def assemble_tracking(
    out_path: str | Path,
    stage_files: dict[str, str | Path],
    frames: Iterable[np.ndarray],
    n_frames: int,
    resolution: int,
    attrs: dict[str, Any],
    timestamps_s: np.ndarray | None = None,
) -> int:
    """Write `tracking.h5`: the cropped frames (one chunk per frame), their times (`timestamps_s`, default: the
    track stage's), plus each stage file copied into its group.

    Frames are streamed in, so memory stays at one frame whatever the video length. Returns the frame count.
    """
    if set(stage_files) != set(MERGED_STAGES):
        raise ValueError(f"assemble needs stage files {MERGED_STAGES}, got {sorted(stage_files)}")
    frames = iter(frames)
    first_frame = next(frames, None)
    expected = expected_tracking_bytes(stage_files, first_frame, n_frames)
    free = shutil.disk_usage(Path(out_path).resolve().parent).free if Path(out_path).parent.exists() else None
    log.info(
        "%s: about %s for %d frames at %d px (estimated from the first frame)%s",
        out_path,
        _human_bytes(expected),
        n_frames,
        resolution,
        "" if free is None else f", {_human_bytes(free)} free there",
    )
    if free is not None and expected > free:
        log.warning("%s may not fit: about %s needed, %s free", out_path, _human_bytes(expected), _human_bytes(free))
    try:
        return _write_tracking(out_path, stage_files, frames, first_frame, n_frames, resolution, attrs, timestamps_s)
    except (OSError, RuntimeError) as exc:  # h5py closing the file after a failed write raises RuntimeError
        if _no_room(exc):
            raise PipelineInputError(
                out_path,
                f"no room to write it (about {_human_bytes(expected)}): free space there "
                "or run the workflow in a larger directory (snakemake --directory); no partial file was left",
            ) from None
        raise


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota, file-size limit


def _no_room(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an exception it arose from is a full disk, quota or file-size limit (HDF5 reports the
    errno in its message: "errno = 28")."""
    while exc is not None:
        if getattr(exc, "errno", None) in _NO_ROOM or any(f"errno = {e}," in str(exc) for e in _NO_ROOM):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def expected_tracking_bytes(stage_files: dict[str, str | Path], first_frame: np.ndarray | None, n_frames: int) -> int:
    """Bytes `tracking.h5` will take: the stage files (copied as they are) plus n_frames times the first frame's size
    under the frames' gzip level 4 (what HDF5's deflate filter writes per one-frame chunk). Faces of one video
    compress alike, so this is within tens of percent (d6: 314 kB per 512² frame)."""
    stages = sum(Path(p).stat().st_size for p in stage_files.values())
    if first_frame is None:
        return stages
    frame = len(zlib.compress(np.ascontiguousarray(first_frame).tobytes(), 4))
    return int(stages + n_frames * frame)


def _write_tracking(out_path, stage_files, frames, first_frame, n_frames, resolution, attrs, timestamps_s) -> int:
    # no chunk cache: each frame reaches the file as it is written, so a full disk raises there (as OSError), not
    # while HDF5 flushes its cache at close, where h5py can only report it and die
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w", rdcc_nbytes=0) as out:
        first = None
        for stage in MERGED_STAGES:
            with open_h5(stage_files[stage]) as src:
                if src.attrs.get("stage") != stage:
                    raise PipelineInputError(stage_files[stage], f"expected a {stage!r} stage file")
                if first is None:
                    first = {k: src.attrs[k] for k in COMMON_ATTRS}
                group = out.create_group(stage)
                _write_attrs(group, dict(src.attrs))
                for name in src:
                    src.copy(src[name], group, name=name)  # copies compressed chunks as they are
        _write_attrs(out, first or {})
        if timestamps_s is None:
            timestamps_s = out["track/timestamps_s"][()]
        timestamps_s = np.asarray(timestamps_s, dtype=np.float64)
        if timestamps_s.shape != (n_frames,):
            raise PipelineInputError(out_path, f"{len(timestamps_s)} frame times for {n_frames} frames")
        _write_dataset(out, "timestamps_s", timestamps_s, per_frame=True)
        _write_attrs(out, {**attrs, "stage": "tracking", "resolution": resolution, "n_frames": n_frames})
        ds = out.create_dataset(
            "frames",
            shape=(n_frames, resolution, resolution, 3),
            dtype=np.uint8,
            chunks=(1, resolution, resolution, 3),
            compression="gzip",
            compression_opts=4,
        )
        count = 0
        for frame in itertools.chain([] if first_frame is None else [first_frame], frames):
            if count >= n_frames:
                raise PipelineInputError(out_path, f"more frames decoded than the {n_frames} tracked")
            ds[count] = frame
            count += 1
        if count != n_frames:
            raise PipelineInputError(out_path, f"decoded {count} frames but tracking has {n_frames}")
        FRAMES.check("frames", ds, {})
    return count


def frame_times(f: h5py.File, fps: float, n: int) -> np.ndarray:
    """(n,) float64 frame times (s) stored in an open `tracking.h5` or `track.h5`; files written before frame times
    were stored fall back to frame / fps."""
    for name in ("timestamps_s", "track/timestamps_s"):
        if name in f:
            return np.asarray(f[name][()], dtype=np.float64)
    return np.arange(n, dtype=np.float64) / float(fps)


def read_timestamps(path: str | Path) -> np.ndarray:
    """(T,) float64 frame times (s) of a `tracking.h5` or `track.h5` (see `frame_times`)."""
    with open_h5(path) as f:
        if "timestamps_s" in f or "track/timestamps_s" in f:
            return frame_times(f, 0.0, 0)
        n = (
            int(f.attrs["n_frames"])
            if "n_frames" in f.attrs
            else int(f["frames" if "frames" in f else "valid"].shape[0])
        )
        return frame_times(f, float(f.attrs["fps"]), n)


def read_frames(path: str | Path, stop: int | None = None) -> np.ndarray:
    """(T, R, R, 3) uint8 `/frames` of a `tracking.h5` (the first `stop` only when given)."""
    with open_h5(path) as f:
        if "frames" not in f:
            raise PipelineInputError(path, "no /frames in the tracking file")
        return f["frames"][()] if stop is None else f["frames"][:stop]


def frames_shape(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of `/frames` of a `tracking.h5`, without reading it."""
    with open_h5(path) as f:
        if "frames" not in f:
            raise PipelineInputError(path, "no /frames in the tracking file")
        return tuple(f["frames"].shape), f["frames"].dtype


def iter_frames(path: str | Path, chunk: int = 64) -> Iterator[tuple[int, np.ndarray]]:
    """(first frame, (<= chunk, R, R, 3) uint8) blocks of `/frames` in order: memory of one block, not the video."""
    with open_h5(path) as f:
        if "frames" not in f:
            raise PipelineInputError(path, "no /frames in the tracking file")
        ds = f["frames"]
        for start in range(0, ds.shape[0], chunk):
            yield start, ds[start : start + chunk]


@contextlib.contextmanager
def frame_reader(path: str | Path, size: int | None = None) -> Iterator[Callable[[int], np.ndarray]]:
    """`frame(i)` -> frame i of a `tracking.h5`'s `/frames` (one chunk read per call, area-resized to `size` when
    given), while the file stays open: a consumer of one frame at a time holds one frame, not the video."""
    import cv2

    with open_h5(path) as f:
        if "frames" not in f:
            raise PipelineInputError(path, "no /frames in the tracking file")
        ds = f["frames"]

        def frame(i: int) -> np.ndarray:
            img = ds[i]
            if size is not None and img.shape[0] != size:
                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
            return img

        yield frame


def read_datasets(path: str | Path, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The listed datasets (paths like `crop/landmarks`) that the file has, read whole; absent ones are left out."""
    with open_h5(path) as f:
        return {name: f[name][()] for name in names if name in f}


def is_hdf5(path: str | Path) -> bool:
    return h5py.is_hdf5(path)


def dataset_names(group: h5py.Group) -> list[str]:
    """Names of the datasets (not sub-groups) directly in an open group."""
    return [n for n in group if isinstance(group[n], h5py.Dataset)]


def provenance(path: str | Path) -> dict[str, str]:
    """The `video`, `source_path` and `source_sha256` of an upstream stage file, for its dependants to carry on."""
    attrs = read_attrs(path)
    try:
        return {k: str(attrs[k]) for k in ("video", "source_path", "source_sha256")}
    except KeyError as exc:
        raise PipelineInputError(path, f"missing provenance attribute {exc}") from None
