"""Every loader of a `.pt` refuses a hostile file (a pickle whose `__reduce__` runs code on load) without running it,
with one line naming the file: the renderer, the audio model, the metrics' test split, the training checkpoint and
`portrait inspect`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neural_renderer.audio.render import AudioDriver
from neural_renderer.cli import main
from neural_renderer.errors import PipelineInputError
from neural_renderer.metrics.features import read_test_split
from neural_renderer.renderer.render import PortraitRenderer
from neural_renderer.renderer.train import load_checkpoint


class Payload:
    """Unpickling this opens (creates) `marker`: proof that the load ran code from the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


LOADERS = {
    "renderer": lambda p: PortraitRenderer(p, "cpu"),
    "audio": lambda p: AudioDriver(p, "cpu"),
    "test split": read_test_split,
    "checkpoint": lambda p: load_checkpoint(p, torch.device("cpu"), {}),
}


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.pt"
    torch.save({"format": "x", "generator": Payload(marker)}, path)
    return path, marker


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_loaders_refuse_a_pickle_that_runs_code(hostile, loader):
    path, marker = hostile
    with pytest.raises(PipelineInputError) as info:
        LOADERS[loader](path)
    assert not marker.exists(), f"{loader} ran code from the file"
    message = str(info.value)
    assert info.value.path == str(path) and str(path) in message
    assert "\n" not in message and len(message) < 400, message


def test_portrait_inspect_refuses_a_pickle_that_runs_code(hostile, capfd):
    path, marker = hostile
    capfd.readouterr()
    rc = main(["inspect", str(path)])
    err = capfd.readouterr().err
    assert not marker.exists()
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith(f"portrait inspect: error: {path}: "), err
