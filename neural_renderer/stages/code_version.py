"""A hash of the code each stage runs, passed to its rule as a param so code changes rerun what they affect.

Snakemake's own `code` rerun trigger sees only the rule's script, not the package it imports. So each stage's file
set is derived from the real imports: the closure over `import` / `from ... import` statements (anywhere in a module,
functions included; relative imports resolved) that stay inside the package, starting from the stage's runner
(`stages/<stage>.py`) and its entry point (`workflow_scripts/<stage>.py`). Importing `a.b.c` runs `a/__init__.py`
and `a/b/__init__.py` first, so those are in the set too, with what they import.

Each file enters the hash as its path and its syntax tree with docstrings and other bare string statements removed
(`ast.dump` carries no comments, line numbers or formatting): a docstring, comment or formatting edit reruns nothing,
a change of logic reruns the stages whose closure holds the file.

Dropped: a hand-kept table of each stage's sub-packages (it drifted from the imports: editing `config.py` reran
nothing); hashing raw bytes (a comment edit reran hours of tracking). Dynamic imports (`importlib` with computed
names) are not followed: the package has none.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "neural_renderer"
ROOT = Path(__file__).resolve().parents[2]
"""The checkout: the package lives in ROOT/neural_renderer, the rules' entry points in ROOT/workflow_scripts."""

_BLOCKS = ("body", "orelse", "finalbody", "handlers", "cases")
"""Fields of a statement that hold statements (or except handlers / match cases, which hold a body)."""


def _statements(body: list) -> list[ast.AST]:
    """Every statement in a block, nested blocks included (functions, classes, if, try, with, match, ...).

    Statements only: imports and docstrings are statements, and skipping the expressions (most of the tree) is what
    makes this several times faster than `ast.walk`."""
    out, todo = [], list(body)
    while todo:
        node = todo.pop()
        out.append(node)
        for name in _BLOCKS:
            todo.extend(getattr(node, name, ()))
    return out


def _strip_docstrings(tree: ast.Module) -> ast.Module:
    """Remove every statement that is only a constant (docstrings, attribute docstrings, `...`): they do nothing."""
    for node in [tree, *_statements(tree.body)]:
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                kept = [s for s in block if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
                setattr(node, name, kept or [ast.Pass()])
    return tree


def _module_name(path: Path, root: Path) -> str:
    """Dotted module name of a file under root (a package's __init__.py names the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Absolute dotted names a module imports (anywhere: functions too), relative ones resolved; `from m import x`
    gives both m and m.x (x may be a submodule; a name that is no module is dropped when resolved to files)."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _files_of(name: str, root: Path) -> list[Path]:
    """The files importing `name` runs, inside the package: each parent package's __init__.py, then the module."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return []
    files = []
    for i in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:i])
        if (base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
            break  # `a.b.c` where a/b.py is a module: c is a name in it
        else:
            break
    return files


def _parse(path: Path, root: Path) -> tuple[str, frozenset[Path]]:
    """(hash of the file's code, files of the package it imports)."""
    return _parse_source(path, root, path.read_bytes())


@functools.cache
def _parse_source(path: Path, root: Path, source: bytes) -> tuple[str, frozenset[Path]]:
    """Cached on the file's text: each file is parsed once per process however many stages import it (and again
    when edited)."""
    tree = ast.parse(source, filename=str(path))
    in_package = path.is_relative_to(root / PACKAGE)
    module = _module_name(path, root) if in_package else path.stem
    names = _imported_names(tree, module, in_package and path.name == "__init__.py")
    digest = hashlib.sha256(ast.dump(_strip_docstrings(tree)).encode()).hexdigest()
    return digest, frozenset(f for name in names for f in _files_of(name, root))


def stage_files(stage: str, root: Path = ROOT) -> list[Path]:
    """The stage's runner and entry point plus every package file they import, directly or not (sorted)."""
    root = Path(root).resolve()
    if not (root / PACKAGE / "stages" / f"{stage}.py").is_file():
        known = sorted(p.stem for p in (root / PACKAGE / "stages").glob("[!_]*.py"))
        raise KeyError(f"unknown stage {stage!r}: no {PACKAGE}/stages/{stage}.py; known: {known}")
    script = root / "workflow_scripts" / f"{stage}.py"
    todo = _files_of(f"{PACKAGE}.stages.{stage}", root) + ([script] if script.is_file() else [])
    seen: set[Path] = set(todo)
    while todo:
        for dep in _parse(todo.pop(), root)[1]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return sorted(seen)


def code_hash(stage: str, root: Path = ROOT) -> str:
    """Short sha256 over the stage's files (path + docstring-free syntax tree), stable across machines.

    The rules ask for it once per rule when Snakefile is parsed (a constant param, not a function of the job), and
    each file is parsed once per process however many stages import it."""
    root = Path(root).resolve()
    digest = hashlib.sha256()
    for path in stage_files(stage, root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(_parse(path, root)[0].encode())
    return digest.hexdigest()[:16]
