"""Lint throughput: ``automations lint`` over 1,000 generated recipes, against PyYAML's C loader.

Generates 1,000 realistic recipe files (a table trigger on a CSV beside them, an ``only_run_if``,
three actions drawn from quo.create_contact / quo.send_sms / loops.update_contact /
loops.send_event / http.request, with ``/Column`` values, ``{/Column}`` inside text and
``${ENV}`` credentials) into a temporary directory, checks that they lint clean, then measures
in the same run, several repeats each:

- (a) ``automations lint DIR --format json`` as a subprocess: wall time, interpreter start
  included (what CI pays);
- (b) ``load_directory([DIR])`` in process: the compiler alone;
- (c) ``yaml.load(text, Loader=yaml.CSafeLoader)`` over the same files (reading them included):
  the floor a YAML-based linter could reach;
- for the subprocess's share: ``python -c pass``, ``import automations.cli``, and the lint in a
  script importing only the compiler and the formats (what a lazily registered command costs).

The measurements take turns in every round, so that a busy moment on a shared machine does not
fall on one of them only.

Targets (the lint-performance issue): (a) at most 1.0 s on the 2-core CI machine, and lint at
most 5x the C loader.

Run: ``python bench/bench_lint.py`` (about 45 s). Prints medians of several repeats.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from automations.recipes.compiler import load_directory

RECIPES = 1_000
REPEATS = 7
TARGET_SECONDS = 1.0
TARGET_RATIO = 5.0

ENV = {
    "QUO_FROM": "+15555550199",
    "CRM_API_KEY": "crm-test-key",
    "QUO_API_KEY": "quo-test-key",
    "LOOPS_API_KEY": "loops-test-key",
}
CSV_HEADER = "Email,First Name,Last Name,Company,Phone,Plan,Status,Opted In,Score"
CSV_ROW = "ada@example.com,Ada,Lovelace,Analytical Engines,(555) 555-0100,pro,new,yes,42"

_ACTIONS = {
    "quo.create_contact": """\
  - id: contact{i}
    quo.create_contact:
      defaultFields:
        firstName: /First Name ?? Friend
        lastName: /Last Name
        company: /Company
        phoneNumbers: [{{name: primary, value: /Phone}}]
        emails: [{{name: work, value: /Email}}]
      source: clay-{i}
      externalId: /Email
""",
    "quo.send_sms": """\
  - id: text{i}
    only_run_if: "\\"Opted In\\" == 'yes'"
    quo.send_sms:
      from: ${{QUO_FROM}}
      to: [/Phone]
      content: "Hi {{/First Name ?? there}}, thanks for your interest in {{/Company}} (#{i})!"
""",
    "loops.update_contact": """\
  - id: loops{i}
    loops.update_contact:
      email: /Email
      firstName: /First Name
      lastName: /Last Name
      userGroup: leads-{i}
      company: /Company
      plan: /Plan ?? free
""",
    "loops.send_event": """\
  - id: event{i}
    only_run_if: "to_number(Score) > `10`"
    loops.send_event:
      email: /Email
      eventName: leadScored{i}
      eventProperties:
        plan: /Plan
        score: /Score
        note: "{{/First Name}} from {{/Company}}"
""",
    "http.request": """\
  - id: crm{i}
    http.request:
      method: POST
      url: https://crm.example.com/api/leads/{{/Email}}?source=recipe{i}
      headers: {{Authorization: "Bearer ${{CRM_API_KEY}}"}}
      json: {{kind: lead, email: /Email, name: "{{/First Name}} {{/Last Name}}", n: {i}}}
""",
}
_KINDS = list(_ACTIONS)


def recipe_text(i: int) -> str:
    """Recipe number ``i``: three different action kinds, chosen by ``i``."""
    kinds = [_KINDS[(i + k) % len(_KINDS)] for k in (0, 1 + i % 2, 3)]
    head = f"""\
# yaml-language-server: $schema=../schemas/recipe.schema.json
name: lead-flow-{i:04d}
description: Generated recipe {i} for the lint benchmark (table row to Quo and Loops)
trigger:
  table: {{path: leads.csv, key: Email, run_on: [added], existing_rows: run}}
only_run_if: "Phone != null && Phone != '' && Status == 'new'"
actions:
"""
    return head + "".join(_ACTIONS[k].format(i=i) for k in kinds)


def generate(directory: Path) -> list[Path]:
    (directory / "leads.csv").write_text(f"{CSV_HEADER}\n{CSV_ROW}\n", "utf-8")
    files = []
    for i in range(RECIPES):
        f = directory / f"lead-flow-{i:04d}.yaml"
        f.write_text(recipe_text(i), "utf-8")
        files.append(f)
    return files


def medians(fns: dict[str, Callable[[], object]], repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds of each function, the functions taking turns in every round so that a
    busy moment on the machine does not land on one of them only."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


#: ``automations lint DIR --format json`` without the CLI's other commands (their imports):
#: what a lazily registered command would cost.
LINT_ONLY = """\
import os, sys
from pathlib import Path
from automations.formats import FORMATS
from automations.recipes.compiler import load_directory
diags = [d for r in load_directory([Path(sys.argv[1])], os.environ) for d in r.diagnostics]
sys.stdout.write(FORMATS["json"](diags))
sys.exit(1 if any(d.is_error for d in diags) else 0)
"""


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-lint-") as tmp:
        directory = Path(tmp)
        files = generate(directory)
        child_env = {**os.environ, **ENV}
        command = [sys.executable, "-m", "automations", "lint", str(directory), "--format", "json"]

        # the files must lint clean, or we would be timing the error path
        results = load_directory([directory], ENV)
        diags = [d for r in results for d in r.diagnostics]
        if diags or not all(r.ok for r in results):
            sys.exit(f"generated recipes do not lint clean: {diags[:3]}")
        proc = subprocess.run(command, env=child_env, capture_output=True, text=True)
        if proc.returncode != 0 or json.loads(proc.stdout or "[]") not in ([], {}):
            sys.exit(f"lint subprocess failed ({proc.returncode}): {proc.stdout[:500]}")

        def c_loader() -> None:
            for f in files:
                yaml.load(f.read_text("utf-8"), Loader=yaml.CSafeLoader)

        def in_process() -> None:
            load_directory([directory], ENV)

        def run(*args: str) -> None:
            subprocess.run([sys.executable, *args], env=child_env, capture_output=True, check=True)

        c_loader()  # warm the page cache and the imports once
        in_process()
        t = medians(
            {
                "yaml": c_loader,
                "load": in_process,
                "cli": lambda: run(*command[1:]),
                "lint_only": lambda: run("-c", LINT_ONLY, str(directory)),
                "python": lambda: run("-c", "pass"),
                "import": lambda: run("-c", "import automations.cli"),
            }
        )

    ratio_in, ratio_cli = t["load"] / t["yaml"], t["cli"] / t["yaml"]
    ok = t["cli"] <= TARGET_SECONDS and ratio_cli <= TARGET_RATIO
    rows = [
        ("(c) PyYAML CSafeLoader, read + parse", f"{t['yaml'] * 1000:8.1f} ms"),
        ("(b) load_directory, in process", f"{t['load'] * 1000:8.1f} ms"),
        ("(a) automations lint DIR --format json", f"{t['cli'] * 1000:8.1f} ms  subprocess"),
        ("    python -c pass", f"{t['python'] * 1000:8.1f} ms"),
        ("    python -c 'import automations.cli'", f"{t['import'] * 1000:8.1f} ms"),
        (
            "    lint without the CLI's other commands",
            f"{t['lint_only'] * 1000:8.1f} ms  subprocess",
        ),
        ("ratio in-process / CLoader", f"{ratio_in:8.2f}x"),
        ("ratio subprocess / CLoader", f"{ratio_cli:8.2f}x"),
        (
            f"target: lint <= {TARGET_SECONDS:.1f} s and <= {TARGET_RATIO:.0f}x CLoader",
            "met" if ok else "NOT met",
        ),
    ]
    print(f"{RECIPES} recipes, 3 actions each, {REPEATS} rounds, medians")
    for label, value in rows:
        print(f"  {label:42} {value}")


if __name__ == "__main__":
    main()
