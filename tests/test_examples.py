"""The examples run (on a slice of the data), so the README's code does not rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs(shared_data: Path) -> None:
    env = {**os.environ, "ETM_SHARED_DATA": str(shared_data)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--limit", "400", "--epochs", "2",
         "--topics", "4"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "topic  0:" in proc.stdout and "coherence:" in proc.stdout and "same topics: True" in proc.stdout
