"""Tests import the pack as `batch_image_processing` (see packload.py) and the helpers in tests/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness, imagefiles, packload, ...

import run_summary
from packload import load_pack

load_pack()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    run_summary.record(terminalreporter.stats)
