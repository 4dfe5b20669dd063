"""``automations run --node-id``: a name that cannot serve as a node's name is refused before
anything starts, with the fix; a good one is the prefix of the node's leases (``claims``)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from automations.runner.claims import node_name

Cli = Callable[..., subprocess.CompletedProcess[str]]


def test_a_node_id_too_long_is_refused(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    out = cli("run", "recipes", "--port", "0", "--node-id", "x" * 41)
    assert out.returncode == 2
    assert "Invalid value for --node-id / AUTOMATIONS_NODE_ID" in out.stderr
    assert "give up to 40 printable characters" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "automations.db").exists()


def test_a_node_id_from_the_environment_is_checked_too(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "recipes").mkdir()
    out = cli("run", "recipes", "--port", "0", env={"AUTOMATIONS_NODE_ID": "web\t1"})
    assert out.returncode == 2
    assert "give up to 40 printable characters" in out.stderr


def test_a_node_name_is_the_id_the_pid_and_a_random_part() -> None:
    assert re.fullmatch(r"web-1:\d+:[0-9a-f]{6}", node_name("web-1"))
    assert node_name("web-1") != node_name("web-1")  # a restarted process is another node
