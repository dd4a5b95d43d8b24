"""Regenerate the generated parts of docs/ARCHITECTURE.md from the workflow and the package themselves.

    python docs/generate.py           # rewrite the blocks between `<!-- generated: NAME -->` and `<!-- end: NAME -->`
    python docs/generate.py --check   # exit 1 when a block is stale (tests/test_docs.py)

Blocks: `rules` (every rule of the workflow as Snakemake loads it: its entry script, the package modules that script
calls, its output patterns), `outputs` (neural_renderer.outputs: each kind of rendered output) and `storage`
(neural_renderer.storage.schema: one row per HDF5 file kind; the full tables are in the README).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
GLUE = {"neural_renderer.threads", "neural_renderer.snakemake_glue"}  # every entry script imports these


def _strip_constraints(pattern: str) -> str:
    """`{video,[A-Za-z]+}` -> `{video}` (constraints hold no braces)."""
    return re.sub(r"\{(\w+),[^{}]*\}", r"{\1}", pattern)


def _calls(script: Path) -> list[str]:
    """The package modules an entry script imports, besides the glue every script shares."""
    found = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("neural_renderer"):
            names = [
                f"{node.module}.{a.name}" if node.module == "neural_renderer.stages" else node.module
                for a in node.names
            ]
            found += [n for n in names if n not in GLUE and n not in found]
    return found


def rules_table() -> str:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    rows = ["| rule | entry script | calls | outputs |", "|---|---|---|---|"]
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(), snakefile=ROOT / "Snakefile", workdir=ROOT
        )._workflow
        for rule in workflow.rules:
            if not rule.script:
                continue
            script = (ROOT / "rules" / rule.script).resolve()
            outputs = "<br>".join(f"`{_strip_constraints(str(o))}`" for o in rule.output)
            calls = ", ".join(f"`{m}`" for m in _calls(script))
            rows.append(f"| {rule.name} | `{script.relative_to(ROOT)}` | {calls} | {outputs} |")
    return "\n".join(rows)


def storage_table() -> str:
    from neural_renderer.storage.schema import STAGES

    rows = ["| schema | file(s) under `results/{video}/` | datasets |", "|---|---|---|"]
    for schema in STAGES.values():
        files = schema.filename or f"{schema.stage}.h5"
        rows.append(f"| {schema.stage} | `{files}` | {', '.join(f'`{d}`' for d in schema.datasets)} |")
    return "\n".join(rows)


def blocks() -> dict[str, str]:
    from neural_renderer.outputs import markdown as outputs_markdown

    return {"rules": rules_table(), "outputs": outputs_markdown(), "storage": storage_table()}


def render(text: str, generated: dict[str, str]) -> str:
    for name, body in generated.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n)(?:.*?\n)?(<!-- end: {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{DOC}: no `<!-- generated: {name} -->` ... `<!-- end: {name} -->` block")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    current = DOC.read_text()
    updated = render(current, blocks())
    if "--check" in argv:
        if updated != current:
            print(f"{DOC.relative_to(ROOT)} is stale: run `python docs/generate.py`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
