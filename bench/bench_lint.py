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
  the floor a YAML-based linter could reach.

Targets (the lint-performance issue): (a) at most 1.0 s on the 2-core CI machine, and lint at
most 5x the C loader.

Run: ``python bench/bench_lint.py`` (about 30 s). Prints medians of several repeats.
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
    only_run_if: "Score > `10`"
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
  table: {{path: leads.csv, key: Email, run_on: [added, updated], existing_rows: run}}
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


def median_seconds(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


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

        def subprocess_lint() -> None:
            subprocess.run(command, env=child_env, capture_output=True, check=True)

        def python_start() -> None:
            subprocess.run([sys.executable, "-c", "pass"], check=True)

        def import_cli() -> None:
            subprocess.run([sys.executable, "-c", "import automations.cli"], check=True)

        c_loader()  # warm the page cache and the imports once
        in_process()
        t_yaml = median_seconds(c_loader)
        t_load = median_seconds(in_process)
        t_cli = median_seconds(subprocess_lint)
        t_python = median_seconds(python_start)
        t_import = median_seconds(import_cli)

    print(f"{RECIPES} recipes, 3 actions each, {REPEATS} repeats, medians")
    print(f"  (c) PyYAML CSafeLoader, read + parse   {t_yaml * 1000:8.1f} ms")
    print(f"  (b) load_directory, in process          {t_load * 1000:8.1f} ms")
    print(f"  (a) automations lint --format json      {t_cli * 1000:8.1f} ms  (subprocess)")
    print(f"      of which: python -c pass            {t_python * 1000:8.1f} ms")
    print(f"                import automations.cli    {t_import * 1000:8.1f} ms  (with start)")
    ratio_in, ratio_cli = t_load / t_yaml, t_cli / t_yaml
    print(
        f"  ratio in-process / CLoader              {ratio_in:8.2f}x  (target <= {TARGET_RATIO}x)"
    )
    print(f"  ratio subprocess / CLoader              {ratio_cli:8.2f}x")
    ok = t_cli <= TARGET_SECONDS and ratio_in <= TARGET_RATIO
    print(
        f"  target lint <= {TARGET_SECONDS:.1f} s and <= {TARGET_RATIO}x: {'met' if ok else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
