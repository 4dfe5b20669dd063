"""The shipped ``loops-contact-created`` recipe in the real runner: the same Loops contact
delivered twice (two webhook ids) leaves exactly one Quo contact, updated (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.conftest import Fakes, StartRunner, dumps, standard_headers
from tests.cli.conftest import REPO

pytestmark = pytest.mark.acceptance


def test_a_contact_delivered_twice_is_one_quo_contact(
    recipes_dir: Path, start_runner: StartRunner, fakes: Fakes
) -> None:
    text = (REPO / "recipes" / "loops-contact-created.yaml").read_text()
    (recipes_dir / "loops-contact-created.yaml").write_text(
        text.replace("${LOOPS_WEBHOOK_SECRET}", "${HOOK_SECRET}")
    )
    runner = start_runner(recipes_dir)
    for n, last in ((1, "Lovelace"), (2, "King")):
        body = dumps(
            {
                "eventName": "contact.created",
                "contact": {"email": "ada+x@example.com", "firstName": "Ada", "lastName": last},
            }
        )
        assert (
            runner.post("/hooks/loops", body, standard_headers(body, f"msg_{n}")).status_code == 202
        )
        runner.wait_runs("loops-contact-created", n)
    runner.wait_idle()
    assert len(fakes.quo.contacts) == 1
    [contact] = fakes.quo.contacts
    assert (contact["externalId"], contact["defaultFields"]["lastName"]) == (
        "ada+x@example.com",
        "King",
    )
    assert [(r.method, r.path.split("?")[0], r.outcome) for r in fakes.quo.received] == [
        ("GET", "/v1/contacts", 200),
        ("POST", "/v1/contacts", 201),
        ("GET", "/v1/contacts", 200),
        ("PATCH", f"/v1/contacts/{contact['id']}", 200),
    ]
    # both runs wait for each other: one order key, the upsert's, recorded by the intake
    keys = runner.query("SELECT order_key FROM runs")
    assert keys == [("loops-contact-created:upsert:ada+x@example.com",)] * 2
    runs = runner.runs()[::-1]  # oldest first
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert [[(s["id"], s["status"]) for s in r["steps"]] for r in runs] == [
        [
            ("contact:find", "succeeded"),
            ("contact:update", "skipped"),
            ("contact:create", "succeeded"),
        ],
        [
            ("contact:find", "succeeded"),
            ("contact:update", "succeeded"),
            ("contact:create", "skipped"),
        ],
    ]
