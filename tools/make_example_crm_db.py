"""Write ``recipes/data/crm.db``: the SQLite table the example recipe ``crm-leads-to-loops``
reads (three leads) and writes back into. Run it again to reset the file:
``python tools/make_example_crm_db.py``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

PATH = Path(__file__).resolve().parents[1] / "recipes" / "data" / "crm.db"

SCHEMA = """
CREATE TABLE leads (
  id INTEGER PRIMARY KEY,
  email TEXT NOT NULL,
  first_name TEXT,
  company TEXT,
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  loops_contact_id TEXT,
  automation_error TEXT
);
-- changed_by: every change of what the recipe reads moves updated_at
CREATE TRIGGER leads_updated_at AFTER UPDATE OF email, first_name, company ON leads
BEGIN
  UPDATE leads SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = NEW.id;
END;
"""

LEADS = [
    (1, "ada@example.com", "Ada", "Analytical Engines", "2024-05-01T10:00:00.000Z"),
    (2, "grace@example.com", "Grace", "Compilers Inc", "2024-05-01T10:05:00.000Z"),
    (3, "alan@example.com", "Alan", "Bletchley Park", "2024-05-01T10:10:00.000Z"),
]


def main() -> None:
    PATH.unlink(missing_ok=True)
    db = sqlite3.connect(PATH)
    try:
        db.execute("PRAGMA journal_mode = DELETE")  # one file, readable read-only
        db.executescript(SCHEMA)
        db.executemany(
            "INSERT INTO leads (id, email, first_name, company, updated_at) VALUES (?, ?, ?, ?, ?)",
            LEADS,
        )
        db.commit()
        db.execute("VACUUM")
    finally:
        db.close()
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
