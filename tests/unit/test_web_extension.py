"""The browser extension is an ES module that the frontend imports whole: one syntax error and
none of it loads (no status line, no buttons, no toasts), with nothing on ComfyUI's console."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
@pytest.mark.parametrize("script", sorted(p.name for p in WEB.glob("*.js")))
def test_the_extension_parses_as_an_es_module(script: str, tmp_path: Path) -> None:
    module = tmp_path / (Path(script).stem + ".mjs")  # .mjs: node checks it as a module, as the browser loads it
    module.write_text((WEB / script).read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run(["node", "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
