"""Tests import the pack as `batch_image_processing` (see packload.py) and the helpers in tests/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness, imagefiles, packload, ...

import run_summary
from packload import load_pack

load_pack()


@pytest.fixture
def prefetch_trusts_new_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the prefetch trust the fresh timestamps of files a test just wrote (it has the racy
    window's own test)."""
    from batch_image_processing.utils.images import prefetch

    monkeypatch.setattr(prefetch, "RACY_WINDOW_NS", 0)


@pytest.fixture
def pool_writes_every_image(monkeypatch: pytest.MonkeyPatch, prefetch_trusts_new_files: None) -> None:
    """Test images are tiny: let the decoding pool write them into run batches as it does large
    ones (and trust the fresh files)."""
    from batch_image_processing.utils.images import run_batch

    monkeypatch.setattr(run_batch, "POOL_WRITE_MIN_PIXELS", 0)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    run_summary.record(terminalreporter.stats)
