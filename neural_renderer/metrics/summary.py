"""All metrics records -> one table (CSV + Markdown, like a paper's table) and a plot for the Snakemake report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError
from neural_renderer.metrics.evaluate import LOWER_IS_BETTER, METRICS
from neural_renderer.outputs import KINDS

ID_COLUMNS = ("kind", "target", "driver", "method", "n_frames")
LABELS = {
    "l1": "L1",
    "psnr": "PSNR",
    "ssim": "SSIM",
    "lpips": "LPIPS",
    "fid": "FID",
    "fvd": "FVD",
    "csim": "CSIM",
    "expression_distance": "Exp. dist.",
    "pose_distance_deg": "Pose dist. (deg)",
    "gaze_distance_deg": "Gaze dist. (deg)",
}


def load_records(paths: list[str | Path]) -> list[dict[str, Any]]:
    records = []
    for path in paths:
        try:
            records.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise PipelineInputError(path, f"unreadable metrics file ({exc})") from None
    return records


def summary_table(records: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for rec in records:
        row = {k: rec[k] for k in ID_COLUMNS}
        row.update({m: rec["metrics"].get(m) for m in METRICS})
        row["csim_backend"] = rec["backends"].get("csim", "")
        row["notes"] = "; ".join(
            f"{k}: {v}" for k, v in sorted(rec.get("notes", {}).items()) if rec["metrics"].get(k) is None
        )
        rows.append(row)
    df = pd.DataFrame(rows, columns=[*ID_COLUMNS, *METRICS, "csim_backend", "notes"])
    order = {name: i for i, name in enumerate(KINDS)}
    return df.sort_values(
        ["kind", "target", "driver", "method"], key=lambda s: s.map(order) if s.name == "kind" else s
    ).reset_index(drop=True)


def _fmt(value: Any, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    digits = 2 if metric in ("psnr", "fid", "fvd", "pose_distance_deg", "gaze_distance_deg") else 4
    return f"{value:.{digits}f}"


def markdown(df: pd.DataFrame) -> str:
    """One Markdown table per kind of output; arrows say which direction is better; n/a reasons below."""
    titles = {name: kind.title for name, kind in KINDS.items()}
    lines = ["# Evaluation summary", ""]
    for kind, group in df.groupby("kind", sort=False):
        metrics = [m for m in METRICS if group[m].notna().any()]
        head = ["target", "driver", "method", "frames"] + [
            LABELS[m] + (" ↓" if LOWER_IS_BETTER[m] else " ↑") for m in metrics
        ]
        lines += [f"## {titles.get(kind, kind)}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for _, row in group.iterrows():
            cells = [row["target"], row["driver"], row["method"], str(row["n_frames"])] + [
                _fmt(row[m], m) for m in metrics
            ]
            lines.append("| " + " | ".join(cells) + " |")
        backends = sorted(set(group["csim_backend"]))
        lines += ["", f"CSIM embedding: {', '.join(backends)}."]
        notes = [
            f"- {r['target']} / {r['driver']} / {r['method']}: {r['notes']}" for _, r in group.iterrows() if r["notes"]
        ]
        if notes:
            lines += ["", "Not computed:", *notes]
        lines.append("")
    return "\n".join(lines)


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in METRICS if df[m].notna().any()] or ["fid"]
    cols = 4
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    labels = [
        f"{r.kind}: {r.driver}→{r.target}" if r.kind != "self" else f"self: {r.target} ({r.method})"
        for r in df.itertuples()
    ]
    for ax, metric in zip(axes.flat, metrics):
        values = df[metric].astype(float)
        ax.barh(range(len(df)), values.fillna(0.0), color=["C0" if v == v else "lightgrey" for v in values])
        ax.set_yticks(range(len(df)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(
            LABELS[metric] + (" (lower is better)" if LOWER_IS_BETTER[metric] else " (higher is better)"), fontsize=9
        )
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def write_summary(
    metric_files: list[str | Path], out_csv: str | Path, out_md: str | Path, out_png: str | Path
) -> pd.DataFrame:
    df = summary_table(load_records(metric_files))
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out_md) as tmp:
        Path(tmp).write_text(markdown(df))
    plot(df, Path(out_png))
    return df
