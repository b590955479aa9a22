"""Tests import the pack as `batch_image_processing` (see packload.py) and the helpers in tests/."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness, imagefiles, packload, ...

from packload import load_pack

load_pack()
