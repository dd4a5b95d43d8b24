"""Every kind of rendered output, described once: where its files are, which real frames it is compared with, and
which metrics it gets.

A trained renderer makes three kinds of output: `self` (its own test frames re-rendered from their tracked motion),
`cross` (a driver's motion on the target) and `audio` (motion predicted from an audio clip). The rules that make
them (rules/renderer.smk, reenact.smk, audio.smk), the rules that measure them (rules/metrics.smk, with their input
functions in rules/common.smk) and the metrics code (stages/metrics.py, metrics/evaluate.py, metrics/summary.py) all
read this table instead of parsing paths or rule names, as `storage/schema.py` does for the HDF5 datasets. The
Markdown table of `python -m neural_renderer.outputs` is part of docs/ARCHITECTURE.md.

Every kind is compared with the target's real test frames as a set (FID, FVD; CSIM against each frame or the mean
identity); what differs is the frame-for-frame `reference`: the same test frames (self), the driving video's frames
(cross: motion only, the faces differ) or none (audio).

Dropped: deriving the kind from the rule's name or the path's folder in each consumer (four copies drifted apart),
and re-deriving the renderer's test split from the config (model.pt stores `test_idx`; a preset may change it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Metric names by what they need (the table's order and direction: neural_renderer.metrics.evaluate.LOWER_IS_BETTER).
PIXEL_METRICS = ("l1", "psnr", "ssim", "lpips")  # the real frame of the same instant
SET_METRICS = ("fid", "fvd", "csim")  # the target's real test frames (CSIM: paired when the reference is the same)
MOTION_METRICS = ("expression_distance", "pose_distance_deg", "gaze_distance_deg")  # frames with the same motion
ALL_METRICS = PIXEL_METRICS + SET_METRICS + MOTION_METRICS

REAL_TEST_FEATURES = "metrics/real_test.features.h5"
"""Features of a target's real test frames, under results/{video}/: the set every kind of output is compared with."""


@dataclass(frozen=True)
class Reference:
    """The real frames a generated frame is compared with, frame for frame."""

    name: str  # test_split | driving | none
    description: str
    features: str = ""  # their features file under results/{video}/ ("" when there are none)


TEST_SPLIT = Reference(
    "test_split",
    "the target's own test frames (`test_idx` stored in renderer/model.pt), the same instants",
    REAL_TEST_FEATURES,
)
DRIVING = Reference(
    "driving",
    "the driver's frames at the rendered `frame_index` (motion only: the faces differ)",
    "reenact/{driver}/driving.features.h5",
)
NO_REFERENCE = Reference("none", "none (no filmed frames drove it)")


@dataclass(frozen=True)
class OutputKind:
    """One kind of rendered output: its files, its reference frames and its metrics."""

    name: str  # the `kind` of metrics records and of the `rendered` file's attributes
    title: str  # the summary table's heading
    rule: str  # the rule that renders it
    folder: str  # under results/{video}/ (the target's folder); may hold the `driver` wildcard
    stem: str  # file name without suffix: {stem}.mp4, {stem}.h5 (schema `rendered`), {stem}.features.h5, ...
    driver: str | None  # the wildcard in `folder` naming what drove it; None: the target drove itself
    reference: Reference
    metrics: tuple[str, ...]  # the metrics it gets; every other one is null with `absent[metric]` as the note
    absent: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = set(ALL_METRICS) - set(self.metrics) - set(self.absent)
        if missing or set(self.metrics) & set(self.absent) or set(self.metrics) - set(ALL_METRICS):
            raise ValueError(f"output kind {self.name!r}: each metric must be either measured or absent with a reason")
        if (self.driver is None) != ("{" not in self.folder):
            raise ValueError(f"output kind {self.name!r}: folder {self.folder!r} and driver {self.driver!r} disagree")

    @property
    def paired(self) -> bool:
        """Each generated frame has its own real frame (pixel metrics, paired CSIM, absolute motion)."""
        return self.reference is TEST_SPLIT

    def pattern(self, results: str, suffix: str = ".h5") -> str:
        """Snakemake pattern of one of its files, e.g. `results/{video}/reenact/{driver}/reenacted.h5`."""
        return f"{results}/{{video}}/{self.folder}/{self.stem}{suffix}"

    def path(self, results: str, video: str, driver: str | None = None, suffix: str = ".h5") -> str:
        """One output's file; `driver` is the driving video or audio clip (ignored for self)."""
        folder = self.folder.format(**{self.driver: driver}) if self.driver else self.folder
        return f"{results}/{video}/{folder}/{self.stem}{suffix}"

    def folder_regex(self, name_pattern: str) -> str:
        """Regex of `folder` with the driver wildcard as a named group matching `name_pattern`."""
        if not self.driver:
            return re.escape(self.folder)
        head, tail = self.folder.split(f"{{{self.driver}}}")
        return f"{re.escape(head)}(?P<{self.driver}>{name_pattern}){re.escape(tail)}"

    def driver_of(self, video: str, folder: str, name_pattern: str) -> str:
        """What drove the output in `folder` of video's results: the target itself for self."""
        m = re.fullmatch(self.folder_regex(name_pattern), folder)
        if m is None:
            raise ValueError(f"{folder!r} is not a folder of {self.name} outputs ({self.folder})")
        return m.group(self.driver) if self.driver else video

    def reference_features(self, results: str, video: str, driver: str | None = None) -> str | None:
        """Features of the frame-for-frame reference frames, or None."""
        if not self.reference.features:
            return None
        return f"{results}/{video}/" + self.reference.features.format(driver=driver)


_NO_GROUND_TRUTH = dict.fromkeys(PIXEL_METRICS, "no ground truth for this kind of output")

SELF = OutputKind(
    name="self",
    title="Self-reenactment (test frames)",
    rule="render",
    folder="renderer",
    stem="test_render",
    driver=None,
    reference=TEST_SPLIT,
    metrics=ALL_METRICS,
)
CROSS = OutputKind(
    name="cross",
    title="Cross-identity reenactment",
    rule="reenact",
    folder="reenact/{driver}",
    stem="reenacted",
    driver="driver",
    reference=DRIVING,
    metrics=SET_METRICS + MOTION_METRICS,
    absent=_NO_GROUND_TRUTH,
)
AUDIO = OutputKind(
    name="audio",
    title="Audio-driven",
    rule="audio_render",
    folder="audio_render/{clip}",
    stem="audio_render",
    driver="clip",
    reference=NO_REFERENCE,
    metrics=SET_METRICS,
    absent=_NO_GROUND_TRUTH | dict.fromkeys(MOTION_METRICS, "no driving frames (audio-driven)"),
)

KINDS: dict[str, OutputKind] = {k.name: k for k in (SELF, CROSS, AUDIO)}  # the summary table's order
BY_STEM: dict[str, OutputKind] = {k.stem: k for k in KINDS.values()}
assert len(BY_STEM) == len(KINDS), "each kind needs its own file stem: the metrics rules tell kinds apart by it"


def output_kind(name: str) -> OutputKind:
    if name not in KINDS:
        raise ValueError(f"unknown kind of output {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


def wildcard_constraints(name_pattern: str) -> dict[str, str]:
    """Constraints of the metrics rules' `{folder}/{stem}` wildcards: any kind's folder and any kind's stem."""
    return {
        "folder": "|".join(re.sub(r"\(\?P<\w+>", "(?:", k.folder_regex(name_pattern)) for k in KINDS.values()),
        "stem": "|".join(re.escape(k.stem) for k in KINDS.values()),
    }


def markdown() -> str:
    """The kinds as a Markdown table (docs/ARCHITECTURE.md)."""
    lines = [
        "| kind | rule | files (under `results/{video}/`) | frame-for-frame reference | metrics | absent (note) |",
        "|---|---|---|---|---|---|",
    ]
    for k in KINDS.values():
        absent = "; ".join(
            f"{', '.join(m for m in k.absent if k.absent[m] == note)}: “{note}”"
            for note in dict.fromkeys(k.absent.values())
        )
        lines.append(
            f"| {k.name} | {k.rule} | `{k.folder}/{k.stem}.{{mp4,h5}}` | {k.reference.description} | "
            f"{', '.join(k.metrics)} | {absent or '-'} |"
        )
    lines += [
        "",
        f"Every kind is also compared, as a set, with the target's real test frames (`{REAL_TEST_FEATURES}`): FID, "
        "FVD and CSIM (paired when the reference is the test split, else against the mean real identity). Cached "
        "features of a rendered file are `{stem}.features.h5` beside it; metrics are `{stem}.metrics.json`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
