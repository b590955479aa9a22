from __future__ import annotations

from pathlib import Path

import pytest
import run_summary


def test_each_run_is_recorded_and_the_summary_names_every_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "runs.jsonl"
    monkeypatch.setenv("BIP_RUN_SUMMARY", str(path))
    monkeypatch.setattr(run_summary, "SERVERS", ["ComfyUI 0.3.75 + frontend 1.32.9"])
    monkeypatch.setenv("BIP_RUN_LABEL", "all tests")
    run_summary.record({"passed": [1, 2, 3], "skipped": [1]})
    monkeypatch.setattr(run_summary, "SERVERS", ["ComfyUI 0.33.0 + frontend 1.49.6"] * 2)
    monkeypatch.setenv("BIP_RUN_LABEL", "end-to-end tests")
    run_summary.record({"passed": [1], "failed": [1], "error": [1]})

    assert run_summary.summarize(str(path)) == 1, "a failed run fails the whole command"
    out = capsys.readouterr().out.splitlines()
    assert "[test] all tests: 3 passed, 0 failed, 1 skipped - ComfyUI 0.3.75 + frontend 1.32.9" in out
    assert "[test] end-to-end tests: 1 passed, 2 failed, 0 skipped - ComfyUI 0.33.0 + frontend 1.49.6" in out
    assert "[test] ComfyUI versions tested: ComfyUI 0.3.75, ComfyUI 0.33.0" in out
    assert out[-1] == "total: 4 passed, 2 failed, 1 skipped"


def test_the_newest_frontend_is_named_by_its_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    static = tmp_path / "frontend-1.58.1" / "static"
    static.mkdir(parents=True)
    monkeypatch.setenv("BIP_FRONT_END_ROOT", str(static))
    assert run_summary.frontend_label() == "1.58.1 (--front-end-root)"
