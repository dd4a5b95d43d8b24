"""Renderer frames beyond memory (neural_renderer.renderer.frames): a long video's frames are decoded once into an
uncompressed cache file and read per batch. The streamed frames equal the in-memory ones, the cache follows its
tracking file and resolution, training from it is the same run, and a write that runs out of room leaves no file.
Real HDF5 files (tests/test_renderer.py's synthetic tracking.h5), CPU only."""

from __future__ import annotations

import time

import numpy as np
import torch
from file_limits import errors_under_file_size_limit
from test_renderer import make_tracking, tiny_cfg

from neural_renderer.renderer.data import FrameCache, load_tracking
from neural_renderer.renderer.frames import PREFIX, FrameFile, StreamingBatches, mean_frame
from neural_renderer.stages import train_renderer


def caches(folder):
    return sorted(p.name for p in folder.glob(f"{PREFIX}*.npy"))


def test_streamed_frames_equal_the_in_memory_ones_and_the_cache_follows_tracking_file_and_resolution(tmp_path):
    tracking = make_tracking(tmp_path / "tracking.h5", n=40)
    work = tmp_path / "renderer"
    work.mkdir()
    for res in (64, 32):  # the crop's resolution, and resized (area averaging) to the training one
        memory = load_tracking(tracking, 32, 8, 8, res).frames
        small = load_tracking(tracking, 32, 8, 8, res, cache_dir=work, in_memory_mb=1.0).frames  # 40 frames < 1 MB
        assert isinstance(memory, np.ndarray) and isinstance(small, np.ndarray)
        assert caches(work) == []  # none made, and the previous resolution's deleted
        streamed = load_tracking(tracking, 32, 8, 8, res, cache_dir=work, in_memory_mb=0).frames
        assert isinstance(streamed, FrameFile) and streamed.shape == memory.shape == (40, res, res, 3)
        assert len(caches(work)) == 1 and caches(work)[0].startswith(f"{PREFIX}{res}px-")  # the other size: deleted
        idx = np.array([39, 3, 4, 5, 0, 3, 17])  # unsorted, repeated, with a run of consecutive frames
        np.testing.assert_array_equal(streamed[idx], memory[idx])
        np.testing.assert_array_equal(streamed[5:9], memory[5:9])
        np.testing.assert_array_equal(streamed[-1], memory[-1])
        np.testing.assert_array_equal(streamed[:], memory)
        np.testing.assert_allclose(mean_frame(streamed, np.arange(2, 40, 3)), memory[2::3].mean(0, dtype=np.float64))
    before = caches(work)
    time.sleep(0.01)
    make_tracking(tracking, n=40)  # the tracking file is rebuilt: a new cache replaces the old one
    load_tracking(tracking, 32, 8, 8, 32, cache_dir=work, in_memory_mb=0)
    assert len(caches(work)) == 1 and caches(work) != before


def test_streaming_batches_serve_the_prefetched_batch_and_any_other(tmp_path):
    tracking = make_tracking(tmp_path / "tracking.h5", n=40)
    data = load_tracking(tracking, 32, 8, 8, cache_dir=tmp_path, in_memory_mb=0)
    memory = load_tracking(tracking, 32, 8, 8).frames
    rows = data.train_idx[::-1].copy()  # positions in a row list that is not the identity
    cache = FrameCache(data.frames, rows, torch.device("cpu"))
    assert cache.stream is not None and not cache.on_device
    in_memory = FrameCache(memory, rows, torch.device("cpu"))
    assert in_memory.stream is None
    for ahead, asked in (([1, 2, 3, 30], [1, 2, 3, 30]), ([5, 6, 7, 8], [9, 1, 0, 31]), (None, [4, 4, 2, 0])):
        if ahead is not None:
            cache.prefetch(torch.tensor(ahead))
        got = cache.batch(torch.tensor(asked), channels_last=False)
        want = in_memory.batch(torch.tensor(asked), channels_last=False)
        assert got.shape == (4, 3, 64, 64)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert cache.stream.misses == 2  # the batches that were not prefetched
    # the trainer's order: the next batch is prefetched before the current one is taken; none is read on the spot
    reader = StreamingBatches(data.frames, rows)
    batches = [torch.tensor([i, i + 1, 30 - i]) for i in range(6)]
    reader.prefetch(batches[0])
    for now, ahead in zip(batches, batches[1:], strict=False):
        reader.prefetch(ahead)
        np.testing.assert_array_equal(reader.batch(now).numpy(), memory[rows[now.numpy()]])
    assert reader.misses == 0
    reader.close()


def test_training_from_the_frame_cache_is_the_same_run_as_from_memory(tmp_path):
    tracking = make_tracking(tmp_path / "tracking.h5")
    models = {}
    for name, limit in (("memory", 2000), ("streamed", 0)):
        out = tmp_path / name / "model.pt"
        result = train_renderer.run(tracking, out, cfg=tiny_cfg(iterations=6, frames_in_memory_mb=limit))
        assert result.iteration == 6
        models[name] = torch.load(out, weights_only=False)["generator"]
        assert len(caches(out.parent)) == (name == "streamed")
    assert models["memory"].keys() == models["streamed"].keys()
    for key, value in models["memory"].items():
        torch.testing.assert_close(models["streamed"][key], value, rtol=0, atol=0, msg=key)


def test_a_cache_write_that_runs_out_of_room_fails_in_one_line_and_leaves_no_file(tmp_path):
    """A file-size limit (RLIMIT_FSIZE, EFBIG) stands in for a full disk or quota: the same OSError path."""
    tracking = make_tracking(tmp_path / "tracking.h5", n=40)
    work = tmp_path / "renderer"
    work.mkdir()
    lines = errors_under_file_size_limit(  # the cache is 40 * 64 * 64 * 3 = 491 kB
        "from neural_renderer.renderer.data import load_tracking\n"
        f"load_tracking({str(tracking)!r}, 32, 8, 8, cache_dir={str(work)!r}, in_memory_mb=0)",
        200_000,
    )
    assert len(lines) == 1 and "no room to write the 0.0 GB frame cache" in lines[0], lines
    assert "frames_in_memory_mb" in lines[0]
    assert list(work.iterdir()) == []  # neither the cache nor its temporary file
