from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``automations ARGS`` as a subprocess in ``tmp_path`` with a clean environment."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("QUO_", "LOOPS_", "MATON_", "AUTOMATIONS_"))
        }
        return subprocess.run(
            [sys.executable, "-m", "automations", *args],
            cwd=tmp_path,
            env={**base, **(env or {})},
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run
