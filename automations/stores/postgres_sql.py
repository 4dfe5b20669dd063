"""Every SQL statement of the PostgreSQL store, in one place, named by what it does.

The layout mirrors the SQLite store's (``sqlite_schema``) column for column, so that one row
codec (``sqlite_schema.run_from_row`` and friends) reads both and ``automations db copy`` moves
rows without converting them:

- ``runs``: one row per run; ``seq`` (an identity) is the insertion order; JSON values are
  ``text`` holding exactly the JSON the codec wrote (``event::jsonb`` works in queries); times
  are ``double precision`` unix seconds; ``(recipe, event_key)`` is unique: one run per event.
  ``id``, ``recipe`` and ``event_key`` use the ``"C"`` collation: byte order, as in SQLite, which
  the id-prefix lookup and the ``runs --key`` range rely on.
- ``steps``: one row per action of a run, keyed by ``(run_seq, idx)``.
- ``state``: the triggers' ``(scope, key) -> value`` positions.
- ``audit``: decisions people took (replay, resolve).
- ``schema_version``: one row per schema version applied, with when.

Migrations (``MIGRATIONS[n]`` takes version ``n`` to ``n + 1``) run in one transaction that
first takes ``pg_advisory_xact_lock(MIGRATION_LOCK)``: a transaction-scoped lock (released by
the commit, so it is safe behind PgBouncer in transaction mode), which makes two nodes starting
together migrate one after the other; the second finds the work done.

Parameters are ``%s`` placeholders (psycopg). Statements that depend on the time take it as a
parameter, so tests need no sleeping.
"""

from __future__ import annotations

__all__ = [
    "CLAIM_RUN_FOR",
    "COUNT_BY_RECIPE",
    "END_HOLD",
    "INSERT_AUDIT",
    "INSERT_RUN",
    "MIGRATIONS",
    "MIGRATION_LOCK",
    "PRUNE_BATCH",
    "PUT_STEP",
    "RUN_SELECT",
    "SCHEMA_VERSION",
    "STEP_SELECT",
]

#: The schema version this code writes.
SCHEMA_VERSION = 5

#: The key of the advisory lock migrations take (any constant; "automations" in ASCII, cut).
MIGRATION_LOCK = 0x6175746F6D6174

_SCHEMA_V1 = """
CREATE TABLE runs (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    recipe text COLLATE "C" NOT NULL,
    trigger text NOT NULL,
    event_key text COLLATE "C" NOT NULL,
    event text,
    created_at double precision NOT NULL,
    status text NOT NULL,
    recipe_hash text,
    "row" text,
    condition boolean,
    dry_run boolean NOT NULL DEFAULT false,
    error text,
    started_at double precision,
    finished_at double precision,
    replay_of text,
    replayed_as text,
    UNIQUE (recipe, event_key)
);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_recipe ON runs (recipe, seq);
CREATE INDEX runs_backlog ON runs (recipe, seq) WHERE status IN ('pending', 'running');
CREATE INDEX runs_status ON runs (status, seq) WHERE status NOT IN ('succeeded', 'skipped');
CREATE INDEX runs_event_key ON runs (event_key);
CREATE INDEX runs_schedule_key ON runs (substr(event_key, 22)) WHERE trigger = 'schedule';
CREATE TABLE steps (
    run_seq bigint NOT NULL REFERENCES runs (seq),
    idx integer NOT NULL,
    step_id text NOT NULL,
    action text NOT NULL,
    status text NOT NULL,
    request text,
    http_status integer,
    response_body text,
    attempts integer NOT NULL DEFAULT 0,
    duration_ms double precision,
    error text,
    error_code text,
    idempotency_key text,
    started_at double precision,
    finished_at double precision,
    resolution text,
    PRIMARY KEY (run_seq, idx)
);
CREATE INDEX steps_finished ON steps (finished_at);
CREATE VIEW step_log AS
    SELECT runs.id AS run_id, steps.* FROM steps JOIN runs ON runs.seq = steps.run_seq;
CREATE TABLE state (
    scope text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE audit (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at double precision NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    run_id text,
    step integer,
    detail text
);
CREATE INDEX audit_run ON audit (run_id) WHERE run_id IS NOT NULL;
"""

# Version 2: claims with leases (``stores/leases.py``), the ground for several runners on one
# database. ``order_key`` keeps the runs of one row in order across nodes; ``lease_token`` is
# the fencing token, incremented by every claim; times are unix seconds like every other time.
# The partial indexes keep a claim and a rescue on the open runs only, whatever the history.
_SCHEMA_V2 = """
ALTER TABLE runs ADD COLUMN order_key text COLLATE "C";
ALTER TABLE runs ADD COLUMN available_at double precision;
ALTER TABLE runs ADD COLUMN lease_owner text;
ALTER TABLE runs ADD COLUMN lease_token bigint NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN lease_expires_at double precision;
CREATE INDEX runs_ready ON runs (seq) WHERE status = 'pending';
CREATE INDEX runs_open_order ON runs (order_key, seq) WHERE status IN ('pending', 'running');
CREATE INDEX runs_leases ON runs (lease_expires_at) WHERE status = 'running';
"""

# Version 3: what several nodes share besides the runs. ``rate_limits``: the next free slot of
# each provider key (``stores/rate_gate.py``), UNLOGGED: a slot book needs no WAL, and one lost
# in a crash restarts empty, which paces correctly from the next request on. ``leaders``: named
# leader leases with a term (``stores/leaders.py``).
_SCHEMA_V3 = """
CREATE UNLOGGED TABLE rate_limits (
    key text COLLATE "C" PRIMARY KEY,
    tat double precision NOT NULL,
    seq bigint NOT NULL,
    recent double precision[] NOT NULL
);
CREATE TABLE leaders (
    name text COLLATE "C" PRIMARY KEY,
    owner text NOT NULL,
    term bigint NOT NULL,
    expires_at double precision NOT NULL
);
"""

# Version 4: the runner claims runs with leases. A run left ``running`` by a version without
# leases gets an expired one, so that a rescue resumes it (instead of it waiting forever).
_SCHEMA_V4 = """
UPDATE runs SET lease_expires_at = 0 WHERE status = 'running' AND lease_expires_at IS NULL

"""

# Version 5 (issue 12, "history stays cheap"): ``runs`` lists newest first by (created_at, seq),
# and every filter, alone or combined, is one index range read in that order, stopping at the
# page's limit (the keyset cursor is a row comparison on the same columns). The status index
# also finds what pruning deletes. They replace the indexes by created_at, by (recipe, seq) and
# the partial one by (status, seq).
_SCHEMA_V5 = """
CREATE INDEX runs_listed ON runs (created_at, seq);
CREATE INDEX runs_recipe_listed ON runs (recipe, created_at, seq);
CREATE INDEX runs_status_listed ON runs (status, created_at, seq);
CREATE INDEX runs_recipe_status_listed ON runs (recipe, status, created_at, seq);
DROP INDEX runs_created;
DROP INDEX runs_recipe;
DROP INDEX runs_status;
"""

#: ``MIGRATIONS[n]`` takes a database from schema version ``n`` to ``n + 1``.
MIGRATIONS: tuple[str, ...] = (
    _SCHEMA_V1,
    _SCHEMA_V2,
    _SCHEMA_V3,
    _SCHEMA_V4,
    _SCHEMA_V5,
)

# -- migrations ----------------------------------------------------------------------------------

CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)
#: Whether the version table exists (false in a new database), without failing.
HAS_VERSION_TABLE = "SELECT to_regclass('schema_version') IS NOT NULL"
CURRENT_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_version"
TAKE_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(%s)"
RECORD_VERSION = "INSERT INTO schema_version (version) VALUES (%s)"

# -- runs ------------------------------------------------------------------------------------------

RUN_COLUMNS = (
    'id, recipe, trigger, event_key, event, created_at, status, recipe_hash, "row", '
    "condition, dry_run, error, started_at, finished_at, replay_of, replayed_as"
)
STEP_COLUMNS = (
    "idx, step_id, action, status, request, http_status, response_body, attempts, "
    "duration_ms, error, error_code, idempotency_key, started_at, finished_at, resolution"
)
AUDIT_COLUMNS = "at, actor, action, run_id, step, detail"
_STEP_NAMES = [c.strip() for c in STEP_COLUMNS.split(",")]

RUN_SELECT = f"SELECT seq, {RUN_COLUMNS} FROM runs"
STEP_SELECT = f"SELECT run_seq, {STEP_COLUMNS} FROM steps"
STEPS_OF_RUN = f"{STEP_SELECT} WHERE run_seq = %s ORDER BY idx"
STEPS_OF_RUNS = f"{STEP_SELECT} WHERE run_seq = ANY(%s) ORDER BY run_seq, idx"

INSERT_RUN = (
    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join(['%s'] * 16)}) "
    "ON CONFLICT (recipe, event_key) DO NOTHING RETURNING seq"
)
# Upsert: the second write of a step (its outcome) updates the row its first (sending) wrote.
PUT_STEP = (
    f"INSERT INTO steps (run_seq, {STEP_COLUMNS}) "
    f"SELECT seq, {', '.join(['%s'] * len(_STEP_NAMES))} FROM runs WHERE id = %s "
    "ON CONFLICT (run_seq, idx) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _STEP_NAMES[1:])
)
RUN_BY_ID = f"{RUN_SELECT} WHERE id = %s"
#: Inside ``transaction()``: the run's row stays locked until the commit, so a read-check-write
#: (replay, resolve) from two processes at once runs one after the other, as SQLite's
#: ``BEGIN IMMEDIATE`` makes it.
RUN_BY_ID_LOCKED = f"{RUN_BY_ID} FOR UPDATE"
RUN_BY_EVENT = f"{RUN_SELECT} WHERE recipe = %s AND event_key = %s"
RUN_BY_EVENT_LOCKED = f"{RUN_BY_EVENT} FOR UPDATE"
#: The two smallest ids at or after a prefix: the only ones that can start with it.
IDS_FROM_PREFIX = "SELECT id FROM runs WHERE id >= %s ORDER BY id LIMIT 2"
RUN_EXISTS = "SELECT 1 FROM runs WHERE id = %s"

#: Claim: mark a pending (or resumed running) run running with the version that runs it;
#: ``{extra}`` holds ``, column = %s`` for the fields set in the same write. The last column
#: says whether the run has steps (a fresh run's are not read).
CLAIM_RUN_FOR = (
    "UPDATE runs SET status = 'running', recipe_hash = %s, "
    "started_at = COALESCE(started_at, %s){extra} "
    "WHERE id = %s AND status IN ('pending', 'running'){fence} "
    f"RETURNING seq, {RUN_COLUMNS}, EXISTS (SELECT 1 FROM steps WHERE run_seq = runs.seq)"
)
UPDATE_RUN = "UPDATE runs SET {assignments} WHERE id = %s"

UNFINISHED = f"{RUN_SELECT} WHERE status IN ('pending', 'running') ORDER BY seq"
UNFINISHED_AFTER = (
    f"{RUN_SELECT} WHERE recipe = %s AND status IN ('pending', 'running') AND "
    "seq > COALESCE((SELECT seq FROM runs WHERE id = %s), 0) ORDER BY seq LIMIT %s"
)
UNFINISHED_COUNTS = (
    "SELECT recipe, COUNT(*) FROM runs WHERE status IN ('pending', 'running') GROUP BY recipe"
)
COUNT_BY_RECIPE = "SELECT recipe, COUNT(*) FROM runs WHERE status = %s GROUP BY recipe"
LIST_RUNS = f"{RUN_SELECT} WHERE {{where}} ORDER BY created_at DESC, seq DESC LIMIT %s"
#: ``RunFilter.before``: after this (created_at, seq) in the order listed.
BEFORE_CURSOR = "(created_at, seq) < (%s, %s)"
#: ``RunFilter.before_id`` / ``after_id``: after / before the run with this id in the order listed
#: (no row when it is gone: the comparison is null, nothing matches).
BEFORE_RUN = "(created_at, seq) < (SELECT created_at, seq FROM runs WHERE id = %s)"
AFTER_RUN = "(created_at, seq) > (SELECT created_at, seq FROM runs WHERE id = %s)"
COUNT_RUNS = "SELECT COUNT(*) FROM runs WHERE {where}"
#: ``RunFilter.key`` (``records.key_matches``), each term answered by an index.
KEY_FILTER = (
    "(event_key = %s OR (event_key > %s AND event_key < %s AND length(event_key) = %s "
    "AND right(event_key, 16) ~ '^[0-9a-f]*$') "
    "OR (trigger = 'schedule' AND substr(event_key, 22) = %s))"
)

#: Final runs past their retention: failed and unknown ones after the first time, the other
#: final ones after the second. Steps go first (they reference their run).
_PRUNABLE = (
    "(status IN ('failed', 'unknown') AND created_at < %(failed_before)s) OR "
    "(status = ANY(%(succeeded_statuses)s) AND created_at < %(succeeded_before)s)"
)
#: One batch of a prune: at most ``%(batch)s`` runs and their steps, in one statement.
PRUNE_BATCH = (
    f"WITH gone AS (SELECT seq FROM runs WHERE {_PRUNABLE} LIMIT %(batch)s), "
    "steps_gone AS (DELETE FROM steps WHERE run_seq IN (SELECT seq FROM gone)) "
    "DELETE FROM runs WHERE seq IN (SELECT seq FROM gone)"
)

END_HOLD = (
    "UPDATE runs SET status = %(status)s, "
    "error = CASE WHEN %(final)s THEN %(error)s ELSE error END, "
    "finished_at = CASE WHEN %(final)s THEN %(now)s ELSE finished_at END "
    "WHERE recipe = %(recipe)s AND status = 'held'"
)

#: Steps that ended at or after a time (``steps_finished`` index): what ``status`` counts.
STEPS_DONE_SINCE = (
    "SELECT runs.recipe, steps.action, runs.id, steps.finished_at FROM steps "
    "JOIN runs ON runs.seq = steps.run_seq WHERE steps.finished_at >= %s "
    "AND steps.status NOT IN ('pending', 'sending', 'skipped')"
)

# -- audit and state -------------------------------------------------------------------------

INSERT_AUDIT = f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
AUDIT_LOG = (
    f"SELECT {AUDIT_COLUMNS} FROM (SELECT seq, {AUDIT_COLUMNS} FROM audit "
    "WHERE {where} ORDER BY seq DESC LIMIT %s) AS newest ORDER BY seq"
)
GET_STATE = "SELECT value FROM state WHERE scope = %s AND key = %s"
SET_STATE = (
    "INSERT INTO state (scope, key, value) VALUES (%s, %s, %s) "
    "ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value"
)
#: The values of one batch of keys (a keyed table scan): the primary key answers each.
GET_STATES = "SELECT key, value FROM state WHERE scope = %s AND key = ANY(%s)"
ALL_STATE = "SELECT key, value FROM state WHERE scope = %s ORDER BY key"

# -- db copy (from a SQLite file) --------------------------------------------------------------

#: A run copied from another store keeps its id; one already there (same id or same event) is
#: left as it is, so that a copy run again adds only what is new.
COPY_RUN = (
    f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join(['%s'] * 16)}) "
    "ON CONFLICT DO NOTHING RETURNING seq"
)
COPY_STEP = (
    f"INSERT INTO steps (run_seq, {STEP_COLUMNS}) VALUES ({', '.join(['%s'] * 16)}) "
    "ON CONFLICT (run_seq, idx) DO NOTHING"
)
COPY_STATE = (
    "INSERT INTO state (scope, key, value) VALUES (%s, %s, %s) ON CONFLICT (scope, key) DO NOTHING"
)
#: An audit entry has no key of its own: one equal in every field is the same entry.
COPY_AUDIT = (
    f"INSERT INTO audit ({AUDIT_COLUMNS}) SELECT %(at)s, %(actor)s, %(action)s, %(run_id)s, "
    "%(step)s, %(detail)s WHERE NOT EXISTS (SELECT 1 FROM audit WHERE at = %(at)s "
    "AND actor = %(actor)s AND action = %(action)s AND run_id IS NOT DISTINCT FROM %(run_id)s "
    "AND step IS NOT DISTINCT FROM %(step)s AND detail IS NOT DISTINCT FROM %(detail)s)"
)

# -- leases (stores/leases.py) -----------------------------------------------------------------
#
# The rules that keep "each run once, no SMS twice" true when several nodes share the runs:
#
# 1. A claim takes ready runs oldest first with FOR NO KEY UPDATE SKIP LOCKED inside a
#    MATERIALIZED CTE (the fence makes LIMIT bound the UPDATE, as in Oban), so two nodes never
#    take the same run and never wait for each other. NO KEY: it does not conflict with the
#    KEY SHARE lock a step's foreign key takes.
# 2. A run whose order key has an earlier open (pending or running) run is not ready: the runs
#    of one row run one at a time, in the order recorded. A concurrent claimer sees the earlier
#    run still pending (its claim is not committed) or running, so it skips the later one too.
# 3. Every claim increments lease_token: the token names one ownership of the run.
# 4. The sending write before a request that must not be repeated succeeds only for the current
#    owner and token of a run still running with an unexpired lease; no row back means the lease
#    was lost and the request must not leave. A final step outcome is never reopened. The run's
#    row is read FOR SHARE: a rescue (which updates it) waits until the sending mark is
#    committed, so the next owner always sees it, or the mark waits for the rescue and fails.
# 5. Renewal extends only leases that have not expired; a rescue returns expired runs to
#    pending in one guarded statement (never select-then-update: River #1302), so a run that
#    finished or was renewed meanwhile is re-checked under its row lock and left alone.

#: The time a statement runs at: the caller's ``now`` (tests), else the server's clock, one
#: clock for every node (no skew between machines).
_LEASE_NOW = "COALESCE(%(now)s::float8, extract(epoch FROM now()))"
_RUN_RETURNING = ", ".join(f"runs.{c.strip()}" for c in RUN_COLUMNS.split(","))
_TAKE = (
    "UPDATE runs SET status = 'running', lease_owner = %(owner)s, "
    f"lease_token = runs.lease_token + 1, lease_expires_at = {_LEASE_NOW} + %(ttl)s "
)
CLAIM_READY = (
    "WITH candidate AS MATERIALIZED ("
    " SELECT r.seq FROM runs r"
    f" WHERE r.status = 'pending' AND COALESCE(r.available_at, 0) <= {_LEASE_NOW} {{recipe}}"
    " AND (r.order_key IS NULL OR NOT EXISTS ("
    "  SELECT 1 FROM runs o WHERE o.order_key = r.order_key AND o.seq < r.seq"
    "  AND o.status IN ('pending', 'running')))"
    " ORDER BY r.seq LIMIT %(limit)s"
    " FOR NO KEY UPDATE SKIP LOCKED) "
    + _TAKE
    + f"FROM candidate WHERE runs.seq = candidate.seq RETURNING runs.seq, {_RUN_RETURNING}, "
    "runs.lease_token"
)
CLAIM_RECIPE = "AND r.recipe = %(recipe)s"
CLAIM_RUN = (
    _TAKE + "WHERE id = %(id)s AND (status = 'pending' OR (status = 'running' AND "
    f"lease_owner = %(owner)s)) RETURNING seq, {_RUN_RETURNING}, lease_token"
)
#: Insert-and-claim: the inserts of one order key take turns (a transaction-scoped lock, safe
#: behind PgBouncer), so a run claimed at its insert is always the earliest open one of its key.
LOCK_ORDER_KEY = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
ORDER_KEY_OPEN = (
    "SELECT 1 FROM runs WHERE order_key = %s AND status IN ('pending', 'running') LIMIT 1"
)
INSERT_CLAIMED = (
    f"INSERT INTO runs ({RUN_COLUMNS}, order_key, lease_owner, lease_token, lease_expires_at) "
    f"VALUES ({', '.join(['%s'] * 16)}, %s, %s, %s, "
    "COALESCE(%s::float8, extract(epoch FROM now())) + %s::float8) "
    "ON CONFLICT (recipe, event_key) DO NOTHING RETURNING seq"
)
#: The recipes with pending runs: a loose index scan of ``runs_backlog`` (one probe per
#: recipe with open runs), then a check that one of them is pending.
READY_RECIPES = (
    "WITH RECURSIVE r(recipe) AS ("
    " (SELECT recipe FROM runs WHERE status IN ('pending', 'running') ORDER BY recipe LIMIT 1)"
    " UNION ALL SELECT (SELECT recipe FROM runs WHERE status IN ('pending', 'running') "
    "AND recipe > r.recipe ORDER BY recipe LIMIT 1) FROM r WHERE r.recipe IS NOT NULL) "
    "SELECT recipe FROM r WHERE recipe IS NOT NULL AND EXISTS (SELECT 1 FROM runs p "
    "WHERE p.recipe = r.recipe AND p.status = 'pending')"
)
_HELD = "status = 'running' AND lease_owner = %(owner)s AND lease_token = %(token)s"
#: Inside a transaction: the row stays locked until the commit, so a rescue waits for it and
#: the writes that follow are fenced by the answer.
HOLDS = f"SELECT 1 FROM runs WHERE id = %(id)s AND {_HELD} FOR NO KEY UPDATE"
FENCED_SENDING = (
    f"INSERT INTO steps (run_seq, {STEP_COLUMNS}) "
    f"SELECT seq, {', '.join(['%s'] * len(_STEP_NAMES))} FROM runs "
    "WHERE id = %s AND status = 'running' AND lease_owner = %s AND lease_token = %s "
    "AND lease_expires_at > COALESCE(%s::float8, extract(epoch FROM now())) FOR SHARE "
    "ON CONFLICT (run_seq, idx) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _STEP_NAMES[1:])
    + " WHERE steps.status NOT IN ('succeeded', 'unknown') RETURNING run_seq"
)
RENEW_LEASES = (
    f"UPDATE runs SET lease_expires_at = {_LEASE_NOW} + %(ttl)s "
    f"WHERE lease_owner = %(owner)s AND status = 'running' AND lease_expires_at > {_LEASE_NOW} "
    "RETURNING id, lease_token"
)
_GIVE_BACK = (
    "UPDATE runs SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, "
    f"available_at = COALESCE(%(at)s::float8, {_LEASE_NOW}) "
)
RESCUE_EXPIRED = (
    _GIVE_BACK + f"WHERE status = 'running' AND lease_expires_at < {_LEASE_NOW} - %(grace)s "
    "RETURNING id, lease_token"
)
RESCUE_ALL = _GIVE_BACK + "WHERE status = 'running'"
RELEASE_LEASE = _GIVE_BACK + f"WHERE id = %(id)s AND {_HELD}"
RELEASE_IDLE = (
    _GIVE_BACK + "WHERE status = 'running' AND lease_owner = %(owner)s AND NOT EXISTS "
    "(SELECT 1 FROM steps WHERE steps.run_seq = runs.seq AND steps.status = 'sending')"
)

# -- wake-ups (stores/wakeup.py) -------------------------------------------------------------
#
# A hint only: sent in the transaction that recorded runs no node claimed, delivered at its
# commit to every listening node. NOTIFY takes a database-wide lock at commit to order the
# queue, so it is sent for runs left unclaimed only (a node claims its own webhooks' runs).

#: The channel runs waiting unclaimed are announced on.
CHANNEL = "automations_runs"
NOTIFY_PENDING = f"NOTIFY {CHANNEL}"
LISTEN_PENDING = f"LISTEN {CHANNEL}"
#: A listener quiet for a while checks that its connection is still there.
LISTENER_CHECK = "SELECT 1"


# -- the shared rate limit (stores/rate_gate.py) ------------------------------------------------
#
# GCRA with no burst, one row per provider key (its limiter key: a hash, never the credential),
# backed by a sliding window. ``tat`` is the key's next free slot (unix seconds), ``seq`` the
# number of the last slot taken, ``recent`` the times of the last ``count`` slots, oldest first.
# A reservation takes a slot in one statement, under the row's lock:
#
#     slot = greatest(tat, now, recent[-count] + count * interval)
#     tat = slot + interval; seq += 1; recent = (recent + [slot])[-count:]
#
# Concurrent reservations of one key queue on that row lock for a moment and get consecutive
# slots; nothing is read and written back in two statements. In steady state the window term
# changes nothing (slots are ``interval`` apart); it moves a slot when one of the ``count``
# before it went late and said so (REPORT_LATE adds its lateness to its entry): then no
# ``count + 1`` requests ever fall within ``count * interval`` seconds, whoever sent them.
# ``now`` is the server's clock_timestamp() (one clock for every node, whatever their own say)
# unless a test passes it. A hold moves the next free slot to at least now + the hold.

_NOW = (
    "COALESCE(%(now)s::double precision, extract(epoch FROM clock_timestamp())::double precision)"
)
_SLOT = (
    "greatest(r.tat, (SELECT t FROM clock), CASE WHEN cardinality(r.recent) >= %(count)s "
    "THEN r.recent[cardinality(r.recent) + 1 - %(count)s] + %(count)s * %(interval)s END)"
)

RESERVE_SLOT = (
    f"WITH clock AS MATERIALIZED (SELECT {_NOW} AS t) "
    "INSERT INTO rate_limits AS r (key, tat, seq, recent) "
    "SELECT %(key)s, clock.t + %(interval)s, 1, ARRAY[clock.t] FROM clock "
    f"ON CONFLICT (key) DO UPDATE SET tat = {_SLOT} + %(interval)s, seq = r.seq + 1, "
    f"recent = (r.recent || {_SLOT})"
    "[greatest(1, cardinality(r.recent) + 2 - %(count)s):] "
    "RETURNING r.recent[cardinality(r.recent)] - (SELECT t FROM clock), r.seq"
)
REPORT_LATE = (
    "UPDATE rate_limits SET recent[cardinality(recent) - (seq - %(number)s)] = "
    "recent[cardinality(recent) - (seq - %(number)s)] + %(late)s "
    "WHERE key = %(key)s AND seq - %(number)s < cardinality(recent) AND %(number)s <= seq"
)
HOLD_SLOTS = (
    f"WITH clock AS MATERIALIZED (SELECT {_NOW} AS t) "
    "INSERT INTO rate_limits AS r (key, tat, seq, recent) "
    "SELECT %(key)s, clock.t + %(hold)s, 0, '{}' FROM clock "
    "ON CONFLICT (key) DO UPDATE SET tat = greatest(r.tat, excluded.tat)"
)

# -- leader leases (stores/leaders.py) ----------------------------------------------------------
#
# One row per name, never a session advisory lock (PgBouncer in transaction mode does not keep
# a session's lock, and a lock carries no term). Taking a lease is one upsert: it succeeds when
# the row is new, expired, or the caller's already; the term grows by one whenever the owner
# changes, so (owner, term) names one leadership and a stale leader's writes can be told apart.
# A release expires the row instead of deleting it, so the next owner's term is still higher.

ACQUIRE_LEADER = (
    f"WITH clock AS MATERIALIZED (SELECT {_NOW} AS t) "
    "INSERT INTO leaders AS l (name, owner, term, expires_at) "
    "SELECT %(name)s, %(owner)s, 1, clock.t + %(ttl)s FROM clock "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
    "term = CASE WHEN l.owner = excluded.owner THEN l.term ELSE l.term + 1 END, "
    "expires_at = excluded.expires_at "
    "WHERE l.owner = excluded.owner OR l.expires_at <= (SELECT t FROM clock) "
    "RETURNING term"
)
RENEW_LEADER = (
    f"WITH clock AS MATERIALIZED (SELECT {_NOW} AS t) "
    "UPDATE leaders SET expires_at = (SELECT t FROM clock) + %(ttl)s "
    "WHERE name = %(name)s AND owner = %(owner)s AND term = %(term)s "
    "AND expires_at > (SELECT t FROM clock)"
)
RELEASE_LEADER = (
    "UPDATE leaders SET expires_at = -1 WHERE name = %(name)s AND owner = %(owner)s "
    "AND expires_at > -1"
)
CURRENT_LEADER = f"SELECT owner, term FROM leaders WHERE name = %(name)s AND expires_at > {_NOW}"
#: ``claim`` with a lease: fenced by its owner and token.
CLAIM_FENCE = " AND status = 'running' AND lease_owner = %s AND lease_token = %s"
