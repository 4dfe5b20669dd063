"""Extract the request-body schemas of the endpoints the engine calls from the vendor specs.

    python tools/extract_vendor_schemas.py [--vendor-dir DIR] [--check]

Reads ``quo-openapi.json`` and ``loops-openapi.json`` (default: the repository's ``specs/``
folder, or ``$AUTOMATIONS_VENDOR_DIR``), resolves every ``$ref`` so each schema stands alone,
and writes ``automations/data/vendor_schemas.json`` with the source file and commit of each spec
(taken from the vendor README). ``--check`` exits 1 when the packaged file is out of date.

One adjustment, recorded in the output under ``adjustments``: where a schema combines ``allOf``
with ``additionalProperties`` and has no ``properties`` of its own (Loops' ContactUpdateRequest),
the members' ``properties`` are copied up. Read literally, the spec would apply
``additionalProperties`` (string/number/boolean) to *every* key, rejecting ``mailingLists``, which
the same spec documents as an object; copying the names up keeps the evident intent.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "automations" / "data" / "vendor_schemas.json"

#: action kind -> (spec file, HTTP method, path)
ENDPOINTS = {
    "quo.create_contact": ("quo-openapi.json", "post", "/v1/contacts"),
    "quo.send_sms": ("quo-openapi.json", "post", "/v1/messages"),
    "quo.find_contacts": ("quo-openapi.json", "get", "/v1/contacts"),
    "quo.update_contact": ("quo-openapi.json", "patch", "/v1/contacts/{id}"),
    "quo.get_call_summary": ("quo-openapi.json", "get", "/v1/call-summaries/{callId}"),
    "quo.get_call_transcript": ("quo-openapi.json", "get", "/v1/call-transcripts/{id}"),
    "quo.list_phone_numbers": ("quo-openapi.json", "get", "/v1/phone-numbers"),
    "loops.update_contact": ("loops-openapi.json", "put", "/v1/contacts/update"),
    "loops.send_event": ("loops-openapi.json", "post", "/v1/events/send"),
    "loops.find_contact": ("loops-openapi.json", "get", "/v1/contacts/find"),
    "loops.send_transactional": ("loops-openapi.json", "post", "/v1/transactional"),
    "loops.delete_contact": ("loops-openapi.json", "post", "/v1/contacts/delete"),
}
# Keys that carry no validation meaning and only bloat the packaged file.
DROPPED_KEYS = frozenset({"examples", "x-mint"})


def vendor_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("AUTOMATIONS_VENDOR_DIR")
    return Path(env) if env else REPO / "specs"


def source_of(readme: str, filename: str) -> dict[str, str]:
    """The README table row for ``filename``: its origin repository, commit and description."""
    stem = filename.rsplit(".", 1)[0]
    for line in readme.splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) < 4 or f"`{stem}." not in cells[1]:
            continue
        commit = re.search(r"commit ([0-9a-f]{40})", cells[3])
        repo = re.search(r"GitHub `([^`]+)`", cells[3])
        if commit is None or repo is None:
            break
        return {
            "file": filename,
            "repository": repo.group(1),
            "commit": commit.group(1),
            "origin": cells[3],
        }
    raise SystemExit(f"vendor README has no source row with a commit for {filename}")


def resolve(node: Any, spec: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every local ``$ref`` replaced by a copy of its target."""
    if isinstance(node, list):
        return [resolve(item, spec, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise SystemExit(f"cannot inline $ref {ref!r} (external or recursive)")
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
        return resolve(merged, spec, (*seen, ref))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            # Field names, not keywords: a property may well be called "examples".
            out[key] = {name: resolve(sub, spec, seen) for name, sub in value.items()}
        else:
            out[key] = resolve(value, spec, seen)
    return out


def lift_allof_properties(schema: dict[str, Any], where: str, notes: list[str]) -> None:
    if "allOf" in schema and "additionalProperties" in schema and "properties" not in schema:
        lifted: dict[str, Any] = {}
        for member in schema["allOf"]:
            for name in member.get("properties", {}):
                lifted.setdefault(name, {})
        schema["properties"] = lifted
        notes.append(
            f"{where}: copied the property names of allOf members ({', '.join(sorted(lifted))})"
            " to the top level so that additionalProperties applies only to custom properties"
        )


def build(vendor: Path) -> dict[str, Any]:
    readme = (vendor / "README.md").read_text(encoding="utf-8")
    specs: dict[str, dict[str, Any]] = {}
    sources: dict[str, dict[str, str]] = {}
    schemas: dict[str, Any] = {}
    notes: list[str] = []
    for kind, (filename, method, path) in ENDPOINTS.items():
        if filename not in specs:
            specs[filename] = json.loads((vendor / filename).read_text(encoding="utf-8"))
            sources[filename] = source_of(readme, filename)
        operation = specs[filename]["paths"][path][method]
        params = [resolve(p, specs[filename]) for p in operation.get("parameters", [])]
        in_path = [p for p in params if p.get("in") == "path"]
        in_query = [p for p in params if p.get("in") == "query"]
        if "requestBody" in operation:
            raw = operation["requestBody"]["content"]["application/json"]["schema"]
            schema = resolve(raw, specs[filename])
            lift_allof_properties(schema, kind, notes)
            if in_path:
                # The action takes the path parameters with the body's fields and sends them in
                # the path: they join the schema it checks.
                schema["properties"] = {
                    **{p["name"]: p["schema"] for p in in_path},
                    **schema.get("properties", {}),
                }
                schema["required"] = [p["name"] for p in in_path] + schema.get("required", [])
                notes.append(
                    f"{kind}: the path parameter(s) {', '.join(p['name'] for p in in_path)} "
                    "added to the body's properties (the action takes them with the body)"
                )
        else:
            # No body: the action's parameters are the operation's path and query parameters.
            schema = {
                "type": "object",
                "properties": {p["name"]: p["schema"] for p in in_path + in_query},
                "required": [p["name"] for p in in_path + in_query if p.get("required")],
                "additionalProperties": False,
            }
        schemas[kind] = {
            "source": filename,
            "method": method.upper(),
            "path": path,
            "operationId": operation.get("operationId"),
            "path_parameters": [p["name"] for p in in_path],
            "query_parameters": [p["name"] for p in in_query],
            "schema": {"$schema": "http://json-schema.org/draft-07/schema#", **schema},
        }
    return {
        "generated_by": "tools/extract_vendor_schemas.py",
        "sources": sources,
        "adjustments": notes,
        "schemas": schemas,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vendor-dir", help="folder holding the vendor specs and README.md")
    parser.add_argument("--check", action="store_true", help="fail if the packaged file differs")
    args = parser.parse_args(argv)
    text = json.dumps(build(vendor_dir(args.vendor_dir)), indent=1, ensure_ascii=False) + "\n"
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run tools/extract_vendor_schemas.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
