"""Hardware-aware presets for the trained networks (renderer, audio).

Problem: the paper's settings (512 px, width 256, batch 16, 100K iterations) take about a day on one GPU and years on
a laptop CPU, so one fixed default is wrong on one of the two. A preset is a partial config section (the settings
that cost time) laid *under* the user's section: anything the user sets wins, everything else comes from the preset.

- `seed`: the paper's settings (the dataclasses' defaults, so the preset itself is empty or nearly so).
- `preview`: settings that finish in minutes on 2 CPU cores and still give a recognisable result.
- `auto`: `seed` where the job runs on CUDA, `preview` on a CPU. The choice is made where the job runs (a SLURM
  compute node, not the login node), logged, and stored in the trained model.

A `seed` run on a CPU that would take longer than `SLOW_CPU_SECONDS` (measured on the machine it runs on) is refused
with that estimate unless the section sets `allow_slow_cpu: true`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from neural_renderer.config import deep_merge
from neural_renderer.errors import PipelineInputError

if TYPE_CHECKING:  # torch is imported where a job runs, not when Snakemake parses the workflow (rules/common.smk)
    import torch

PRESET_NAMES = ("auto", "seed", "preview")
SLOW_CPU_SECONDS = 3600.0


@dataclass(frozen=True)
class PresetChoice:
    requested: str  # auto | seed | preview (as configured)
    name: str  # seed | preview (what runs)
    reason: str  # one line for logs, model files and the report

    def to_dict(self) -> dict[str, str]:
        return {"requested": self.requested, "name": self.name, "reason": self.reason}


@dataclass(frozen=True)
class Placement:
    """Where a trained network runs and the preset that runs there: resolved once, by the stage, where the job runs,
    and passed down (the training loops never resolve either again)."""

    device: torch.device
    preset: PresetChoice


def place(requested_preset: str, requested_device: str) -> Placement:
    """The configured device (auto | cpu | cuda) and preset (auto | seed | preview) -> what runs."""
    from neural_renderer.device import resolve_device

    device = resolve_device(requested_device)
    return Placement(device, choose_preset(requested_preset, device))


def choose_preset(requested: str, device: torch.device) -> PresetChoice:
    """auto -> seed on CUDA, preview elsewhere; an explicit name is kept (and said so)."""
    if requested not in PRESET_NAMES:
        raise PipelineInputError(None, f"unknown preset {requested!r}: choose one of {', '.join(PRESET_NAMES)}")
    if requested != "auto":
        return PresetChoice(requested, requested, f"preset {requested!r} set in the config (device {device.type})")
    if device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device)
        return PresetChoice(requested, "seed", f"auto: CUDA device {name} found -> seed (the paper's settings)")
    return PresetChoice(requested, "preview", "auto: no CUDA device -> preview (minutes on a CPU)")


def apply_preset(presets: dict[str, dict[str, Any]], section: dict[str, Any], choice: PresetChoice) -> dict[str, Any]:
    """The preset's values under the user's section (the user's keys win); `preset` holds the name that runs."""
    user = {k: v for k, v in section.items() if k != "preset"}
    return {**deep_merge(presets[choice.name], user), "preset": choice.name}


def refuse_slow_cpu(choice: PresetChoice, device: torch.device, seconds: float, what: str, allowed: bool) -> None:
    """A `seed` run on a CPU estimated at over an hour is refused, naming the estimate, unless `allowed`."""
    if choice.name != "seed" or device.type == "cuda" or allowed or seconds < SLOW_CPU_SECONDS:
        return
    raise PipelineInputError(
        None,
        f"{what} with preset 'seed' on the CPU would take about {format_duration(seconds)} (measured on this machine): "
        "use preset 'preview' or 'auto', run on a GPU, or set allow_slow_cpu: true to force it",
    )


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"
