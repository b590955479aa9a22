"""The layout shows the architecture: subsystems import only downwards, modules stay small, and
only the bridge touches ComfyUI's internals (see ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Rank of each part of utils/: a module may import its own subsystem or a lower rank, never a higher one.
RANKS = {
    "log": 0, "paths": 0, "file_listing": 0,
    "comfy": 1, "images": 1, "saving": 1,
    "shared_job": 2, "companions": 2,
    "batch": 3,
}
COMFY_MODULES = {"comfy", "comfy_execution", "comfy_api", "server", "execution", "folder_paths", "nodes", "aiohttp"}
MAX_LINES = 300


def _pack_modules() -> list[Path]:
    return sorted(p for folder in ("utils", "nodes") for p in (REPO / folder).rglob("*.py"))


def _subsystem(parts: tuple[str, ...]) -> str:
    """The subsystem of a module path inside utils/ ('utils', 'batch', 'chain') -> 'batch'."""
    return parts[1].removesuffix(".py") if len(parts) > 1 else ""


def _imported(module: Path) -> list[tuple[tuple[str, ...], int]]:
    """(path parts from the repo root of each pack module it imports, line)."""
    own = module.relative_to(REPO).parts[:-1]
    found = []
    for node in ast.walk(ast.parse(module.read_text(), str(module))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = own[: len(own) - (node.level - 1)]
            target = base + tuple((node.module or "").split(".")) if node.module else base
            names = [alias.name for alias in node.names]
            if node.module is None or target[-1] in ("utils", "comfy", "images", "saving", "shared_job", "batch"):
                found += [((*target, name), node.lineno) for name in names]
            else:
                found.append((target, node.lineno))
    return found


def test_every_utils_module_belongs_to_a_known_subsystem() -> None:
    for module in (REPO / "utils").rglob("*.py"):
        parts = module.relative_to(REPO).parts
        if parts == ("utils", "__init__.py"):
            continue
        assert _subsystem(parts) in RANKS, f"{module}: add its folder to RANKS and ARCHITECTURE.md"


@pytest.mark.parametrize("module", sorted((REPO / "utils").glob("*/*.py")) + sorted((REPO / "utils").glob("[!_]*.py")),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_imports_run_downwards_only(module: Path) -> None:
    parts = module.relative_to(REPO).parts
    mine = _subsystem(parts)
    for target, line in _imported(module):
        assert target[0] == "utils", f"{module}:{line} imports {'.'.join(target)} from outside utils/"
        theirs = _subsystem(target)
        assert theirs == mine or RANKS[theirs] < RANKS[mine], (
            f"{module.relative_to(REPO)}:{line} ({mine}) imports {'.'.join(target)} ({theirs}): upwards or sideways"
        )


@pytest.mark.parametrize("module", _pack_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_over_300_lines(module: Path) -> None:
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_LINES, f"{module.relative_to(REPO)} has {lines} lines: split it by concern"


def test_only_the_bridge_imports_comfyui() -> None:
    offenders = []
    for module in _pack_modules():
        if module.relative_to(REPO).parts == ("utils", "comfy", "bridge.py"):
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offenders += [f"{module.relative_to(REPO)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in COMFY_MODULES]
    # http_routes builds its JSON responses with aiohttp's web module, which ComfyUI's routes use.
    assert offenders == ["utils/batch/http_routes.py:58 aiohttp"]
