"""The renderer's frames at its resolution, without holding a long video in memory.

Problem: training samples random batches from every training frame, many times over. `tracking.h5` stores them
gzip-compressed at the crop resolution, one chunk per frame; reading a whole video into memory costs T R^2 3 bytes
(10,000 frames at 512 px: 7.9 GB; the paper's 10,934 at 1024^2: 34 GB), which no host memory target at that scale
allows.

Structure:
- `frames_at` gives the frames as an array-like indexed by frame: a numpy array when they take at most
  `in_memory_mb` at the training resolution (today's path: read and resized block by block), otherwise a `FrameFile`.
- `FrameFile` is an uncompressed `.npy` of all frames at the training resolution, written once per video into the
  renderer's folder (`build_frame_file`, atomically; its name carries tracking.h5's size, mtime and the resolution,
  so a rebuilt tracking file or another resolution builds a new one and the stale ones are deleted). Indexing it
  reads only the asked rows with `os.preadv` (the kernel copy releases the GIL; pages stay in the page cache, which
  the kernel reclaims, and never count as the process's memory as a memmap's touched pages would).
- `StreamingBatches` serves training batches from a `FrameFile`: `prefetch(idx)` reads the next batch on a
  background thread while the current step runs (the trainer knows the next batch: it draws it from a copy of its
  seeded sampler, so the run and its resume are unchanged).
- `mean_frame` averages frames block by block.

Dropped: sampling batches from `tracking.h5` itself (gzip at one chunk per frame: about 4 ms per 512 px frame on
one core, i.e. about 250 frames/s at best with no resize, too close to the seed preset's 240 frames/s, and the resize
to another resolution on top); a DataLoader with worker processes (each worker re-opens the file and pickles
batches back; one reading thread already feeds more than needed, docs/BENCHMARKS.md); `np.memmap` (touched pages
count in the process's RSS up to the whole file, which is what SLURM's memory accounting and our measurements see).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError
from neural_renderer.storage import frames_shape, iter_frames

log = logging.getLogger(__name__)

BLOCK = 64  # frames per block when reading tracking.h5 or a FrameFile sequentially
PREFIX = "frames-"  # FrameFile names: frames-{resolution}px-{key}.npy in the cache folder


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, R, R, 3) uint8 -> (T, size, size, 3): area averaging when shrinking (no aliasing), bicubic when growing."""
    import cv2

    if frames.shape[1] == size:
        return frames
    interp = cv2.INTER_AREA if size < frames.shape[1] else cv2.INTER_CUBIC
    return (
        np.stack([cv2.resize(f, (size, size), interpolation=interp) for f in frames])
        if len(frames)
        else frames.reshape(0, size, size, 3)
    )


class FrameFile:
    """A `.npy` of (T, R, R, 3) uint8 frames, read by rows on demand: `f[i]`, `f[a:b]`, `f[index array]`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise PipelineInputError(self.path, f"unknown .npy version {version}")
            shape, fortran, dtype = read_header[version](f)
            self.offset = f.tell()
        if fortran or dtype != np.uint8 or len(shape) != 4:
            raise PipelineInputError(self.path, f"not a frame cache: {shape} {dtype} fortran={fortran}")
        self.shape, self.dtype, self.ndim = tuple(shape), np.dtype(np.uint8), 4
        self.frame_bytes = int(np.prod(shape[1:]))
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
            self._fd = None

    def read(self, rows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(N,) frame indices -> (N, R, R, 3) uint8; consecutive rows are read in one call."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"frame index out of range 0..{len(self) - 1}")
        out = np.empty((len(rows), *self.shape[1:]), np.uint8) if out is None else out
        i = 0
        while i < len(rows):  # runs of consecutive frames: one preadv each
            j = i + 1
            while j < len(rows) and rows[j] == rows[j - 1] + 1:
                j += 1
            want = (j - i) * self.frame_bytes
            got = os.preadv(self._fd, [memoryview(out[i:j]).cast("B")], self.offset + int(rows[i]) * self.frame_bytes)
            if got != want:
                raise PipelineInputError(self.path, f"frame cache is truncated (read {got} of {want} bytes)")
            i = j
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.read(np.array([key % len(self)]))[0]
        if isinstance(key, slice):
            return self.read(np.arange(len(self))[key])
        rows = np.asarray(key)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return self.read(rows)


def cache_path(tracking_h5: str | Path, resolution: int, cache_dir: str | Path) -> Path:
    """The FrameFile of this tracking file's current content at `resolution` (size + mtime name its version)."""
    st = Path(tracking_h5).stat()
    key = hashlib.sha256(f"{Path(tracking_h5).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{PREFIX}{resolution}px-{key}.npy"


def build_frame_file(tracking_h5: str | Path, resolution: int, path: Path, n_frames: int) -> None:
    """Decode and resize `/frames` block by block into `path` (atomic: a failure or a full disk leaves no file)."""
    shape = (n_frames, resolution, resolution, 3)
    size_gb = np.prod(shape) / 1e9
    log.info(
        "building the frame cache %s (%.1f GB, %d frames at %d px), once per tracking file", path, size_gb, *shape[:2]
    )
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.lib.format.write_array_header_2_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
            for _, block in iter_frames(tracking_h5, BLOCK):
                f.write(np.ascontiguousarray(resize_frames(block, resolution)).data)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):  # disk full, quota, file-size limit
            raise PipelineInputError(
                path,
                f"no room to write the {size_gb:.1f} GB frame cache ({os.strerror(exc.errno)}): free space there or "
                "raise renderer.train.frames_in_memory_mb to hold the frames in memory",
            ) from None
        raise


def frames_at(
    tracking_h5: str | Path, resolution: int | None, cache_dir: str | Path | None, in_memory_mb: float
) -> np.ndarray | FrameFile:
    """All frames of `tracking_h5` at `resolution` (None: the crop's): in memory up to `in_memory_mb` MB (or without
    a `cache_dir`), else a FrameFile in `cache_dir` (built on first use). Other frame caches there are deleted."""
    shape, dtype = frames_shape(tracking_h5)
    if len(shape) != 4 or shape[-1] != 3 or dtype != np.uint8 or shape[1] != shape[2]:
        raise PipelineInputError(tracking_h5, f"frames must be (T, R, R, 3) uint8, got {shape} {dtype}")
    t, res = shape[0], resolution or shape[1]
    if res % 4:
        raise PipelineInputError(tracking_h5, f"renderer resolution {res} is not divisible by 4 (the MLP grid is H/4)")
    nbytes = t * res * res * 3
    stream = cache_dir is not None and nbytes > in_memory_mb * 1e6
    path = cache_path(tracking_h5, res, cache_dir) if stream else None
    for stale in Path(cache_dir).glob(f"{PREFIX}*.npy") if cache_dir is not None else ():
        if stale != path:  # of an older tracking file, another resolution, or frames now held in memory
            log.info("removing the stale frame cache %s", stale)
            stale.unlink(missing_ok=True)
    if not stream:
        out = np.empty((t, res, res, 3), np.uint8)
        for start, block in iter_frames(tracking_h5, BLOCK):
            out[start : start + len(block)] = resize_frames(block, res)
        return out
    if not path.is_file():
        build_frame_file(tracking_h5, res, path, t)
    frames = FrameFile(path)
    if frames.shape != (t, res, res, 3):  # e.g. written by another version: rebuild
        path.unlink()
        build_frame_file(tracking_h5, res, path, t)
        frames = FrameFile(path)
    log.info(
        "streaming %d frames at %d px from %s (%.1f GB > in_memory_mb %g)", t, res, path, nbytes / 1e9, in_memory_mb
    )
    return frames


def mean_frame(frames: np.ndarray | FrameFile, rows: np.ndarray) -> np.ndarray:
    """(R, R, 3) float64 mean of the given frames, read block by block."""
    total = np.zeros(frames.shape[1:], np.float64)
    for i in range(0, len(rows), BLOCK):
        total += frames[rows[i : i + BLOCK]].sum(0, dtype=np.float64)
    return total / max(len(rows), 1)


class StreamingBatches:
    """Training batches read from a FrameFile: `batch(idx)` -> (B, R, R, 3) uint8 tensor of the frames
    `rows[idx]`; `prefetch(idx)` starts reading a coming batch on a background thread (the last `AHEAD` asked are
    kept: the trainer asks for the next batch before it takes the current one). `misses` counts batches read on
    the spot (not prefetched)."""

    AHEAD = 2

    def __init__(self, frames: FrameFile, rows: np.ndarray, pin: bool = False):
        self.frames, self.rows, self.pin = frames, np.asarray(rows, np.int64), pin
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="frame-reader")
        self._pending: dict[bytes, Future] = {}
        self.misses = 0

    def _read(self, idx: np.ndarray) -> torch.Tensor:
        rows = self.rows[idx]
        order = np.argsort(rows, kind="stable")  # file order: runs read in one call, the disk read forward
        out = np.empty((len(rows), *self.frames.shape[1:]), np.uint8)
        out[order] = self.frames.read(rows[order])
        tensor = torch.from_numpy(out)
        return tensor.pin_memory() if self.pin else tensor

    def prefetch(self, idx: torch.Tensor) -> None:
        idx = idx.numpy()
        key = idx.tobytes()
        if key not in self._pending:
            self._pending[key] = self._pool.submit(self._read, idx)
        while len(self._pending) > self.AHEAD:  # never asked for: dropped (its read still finishes)
            self._pending.pop(next(iter(self._pending)))

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.numpy()
        future = self._pending.pop(idx.tobytes(), None)
        if future is not None:
            return future.result()
        self.misses += 1
        return self._read(idx)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def to_device_blockwise(frames: np.ndarray | FrameFile, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """frames[rows] as one uint8 tensor on `device`, filled block by block (host memory: one block)."""
    out = torch.empty((len(rows), *frames.shape[1:]), dtype=torch.uint8, device=device)
    for i in range(0, len(rows), BLOCK):
        out[i : i + BLOCK] = torch.from_numpy(np.ascontiguousarray(frames[rows[i : i + BLOCK]])).to(device)
    return out
