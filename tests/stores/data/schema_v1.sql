-- A run database written by the code of main at e917cc4 (schema version 1): a succeeded run,
-- a failed run replayed once, an unknown SMS run with a dry-run replay. Made with
-- automations' own Executor, SQLiteStore and replay against the fakes, then `sqlite3 .dump`.
PRAGMA user_version = 1;
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY,        -- insertion order, what steps.run_seq refers to
    id TEXT NOT NULL UNIQUE,
    recipe TEXT NOT NULL,
    trigger TEXT NOT NULL,          -- table, webhook, schedule, manual
    event_key TEXT NOT NULL,        -- one run per (recipe, event_key)
    event TEXT,                     -- JSON
    created_at REAL NOT NULL,       -- unix seconds
    status TEXT NOT NULL,           -- pending, running, succeeded, failed, skipped, unknown
    recipe_hash TEXT,
    row TEXT,                       -- JSON
    condition INTEGER,              -- 1, 0, or NULL when not evaluated
    dry_run INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    replay_of TEXT,                 -- runs.id of the run this one replays
    UNIQUE (recipe, event_key)
);
INSERT INTO runs VALUES(1,'b8bd9d7ba9c54ad9a73a5253e4cfe419','lead','webhook','evt-ok','{"Email":"ada@example.com","Phone":"+15555550100","First Name":"Ada"}',1790000000.0,'succeeded','bfb4e0e2d70f106e',NULL,1,0,NULL,1790000000.0,1790000001.0,NULL);
INSERT INTO runs VALUES(2,'9eb009496e724f8a843eb8c41462ffab','lead','webhook','evt-402','{"Email":"ada@example.com","Phone":"+15555550100","First Name":"Ada"}',1790000000.0,'failed','bfb4e0e2d70f106e',NULL,1,0,'sms: Quo refused with 402: POST /v1/messages (1 attempt): The organization does not have enough prepaid credits to send the message; the Quo workspace has not enough prepaid API credits: add credits, then replay (replayed as 2e3ab4fdb30a486b8ab8691e229d722c)',1790000000.0,1790000001.0,NULL);
INSERT INTO runs VALUES(3,'2e3ab4fdb30a486b8ab8691e229d722c','lead','webhook','evt-402#replay-1','{"Email":"ada@example.com","Phone":"+15555550100","First Name":"Ada"}',1796004634.3570082187,'succeeded','bfb4e0e2d70f106e',NULL,1,0,NULL,1790000000.0,1790000001.0,'9eb009496e724f8a843eb8c41462ffab');
INSERT INTO runs VALUES(4,'4db68c16efe54dc388ddff310611210f','lead','webhook','evt-lost','{"Email":"ada@example.com","Phone":"+15555550100","First Name":"Ada"}',1790000000.0,'unknown','bfb4e0e2d70f106e',NULL,1,0,'sms: Quo gave no answer (ReadTimeout) after POST /v1/messages was sent (attempt 1, 1 ms): it may have been delivered, so it is not sent again (replayed as a952abb1fd0141c6906788bd49ef7649)',1790000000.0,1790000001.0,NULL);
INSERT INTO runs VALUES(5,'a952abb1fd0141c6906788bd49ef7649','lead','webhook','evt-lost#replay-1','{"Email":"ada@example.com","Phone":"+15555550100","First Name":"Ada"}',1796004634.5594239234,'succeeded','bfb4e0e2d70f106e',NULL,1,1,NULL,1790000000.0,1790000001.0,'4db68c16efe54dc388ddff310611210f');
CREATE TABLE steps (
    run_seq INTEGER NOT NULL REFERENCES runs (seq),
    idx INTEGER NOT NULL,           -- the action's position in the recipe, from 0
    step_id TEXT NOT NULL,
    action TEXT NOT NULL,           -- quo.send_sms, loops.send_event, http.request...
    status TEXT NOT NULL,           -- pending, sending, succeeded, failed, skipped, unknown...
    request TEXT,                   -- JSON: method, url, headers (masked), body
    http_status INTEGER,
    response_body TEXT,             -- JSON
    attempts INTEGER NOT NULL DEFAULT 0,
    duration_ms REAL,
    error TEXT,
    error_code TEXT,
    idempotency_key TEXT,
    started_at REAL,
    finished_at REAL,
    PRIMARY KEY (run_seq, idx)
);
INSERT INTO steps VALUES(1,0,'welcome','loops.send_event','succeeded','{"method":"POST","url":"https://app.loops.so/api/v1/events/send","body":{"email":"ada@example.com","eventName":"signup"}}',200,'{"success":true}',1,0.67400000000000004352,NULL,NULL,'automations-b8bd9d7ba9c54ad9a73a5253e4cfe419-0',1790000001.0,1790000001.0);
INSERT INTO steps VALUES(1,1,'sms','quo.send_sms','succeeded','{"method":"POST","url":"https://api.openphone.com/v1/messages","body":{"from":"${QUO_FROM}","to":["+15555550100"],"content":"Hi Ada!"}}',202,'{"data":{"id":"AC000000000000000000000001","to":["+15555550100"],"from":"${QUO_FROM}","text":"Hi Ada!","phoneNumberId":"PN00000001","direction":"outgoing","userId":"US0000000001","status":"queued","createdAt":"2026-11-30T02:10:34.255272Z","updatedAt":"2026-11-30T02:10:34.255272Z"}}',1,0.79600000000000004085,NULL,NULL,NULL,1790000001.0,1790000001.0);
INSERT INTO steps VALUES(2,0,'welcome','loops.send_event','succeeded','{"method":"POST","url":"https://app.loops.so/api/v1/events/send","body":{"email":"ada@example.com","eventName":"signup"}}',200,'{"success":true}',1,0.94499999999999995115,NULL,NULL,'automations-9eb009496e724f8a843eb8c41462ffab-0',1790000001.0,1790000001.0);
INSERT INTO steps VALUES(2,1,'sms','quo.send_sms','failed','{"method":"POST","url":"https://api.openphone.com/v1/messages","body":{"from":"${QUO_FROM}","to":["+15555550100"],"content":"Hi Ada!"}}',402,'{"message":"The organization does not have enough prepaid credits to send the message","code":"0200402","status":402,"docs":"https://openphone.com/docs","title":"Not Enough Credits","trace":"trace-2","description":"The organization does not have enough prepaid credits to send the message"}',1,1.9193120000409180647,'Quo refused with 402: POST /v1/messages (1 attempt): The organization does not have enough prepaid credits to send the message; the Quo workspace has not enough prepaid API credits: add credits, then replay','0200402',NULL,1790000001.0,1790000001.0);
INSERT INTO steps VALUES(3,0,'welcome','loops.send_event','succeeded','{"method":"POST","url":"https://app.loops.so/api/v1/events/send","body":{"email":"ada@example.com","eventName":"signup"}}',200,'{"success":true}',1,0.94499999999999995115,NULL,NULL,'automations-9eb009496e724f8a843eb8c41462ffab-0',1790000001.0,1790000001.0);
INSERT INTO steps VALUES(3,1,'sms','quo.send_sms','succeeded','{"method":"POST","url":"https://api.openphone.com/v1/messages","body":{"from":"${QUO_FROM}","to":["+15555550100"],"content":"Hi Ada!"}}',202,'{"data":{"id":"AC000000000000000000000002","to":["+15555550100"],"from":"${QUO_FROM}","text":"Hi Ada!","phoneNumberId":"PN00000002","direction":"outgoing","userId":"US0000000001","status":"queued","createdAt":"2026-11-30T02:10:34.457793Z","updatedAt":"2026-11-30T02:10:34.457793Z"}}',1,0.92800000000000004707,NULL,NULL,NULL,1790000001.0,1790000001.0);
INSERT INTO steps VALUES(4,0,'welcome','loops.send_event','succeeded','{"method":"POST","url":"https://app.loops.so/api/v1/events/send","body":{"email":"ada@example.com","eventName":"signup"}}',200,'{"success":true}',1,0.32200000000000000843,NULL,NULL,'automations-4db68c16efe54dc388ddff310611210f-0',1790000001.0,1790000001.0);
INSERT INTO steps VALUES(4,1,'sms','quo.send_sms','unknown','{"method":"POST","url":"https://api.openphone.com/v1/messages","body":{"from":"${QUO_FROM}","to":["+15555550100"],"content":"Hi Ada!"}}',NULL,NULL,1,100.26461099994321557,'Quo gave no answer (ReadTimeout) after POST /v1/messages was sent (attempt 1, 1 ms): it may have been delivered, so it is not sent again',NULL,NULL,1790000001.0,1790000001.0);
INSERT INTO steps VALUES(5,0,'welcome','loops.send_event','succeeded','{"method":"POST","url":"https://app.loops.so/api/v1/events/send","body":{"email":"ada@example.com","eventName":"signup"}}',200,'{"success":true}',1,0.32200000000000000843,NULL,NULL,'automations-4db68c16efe54dc388ddff310611210f-0',1790000001.0,1790000001.0);
INSERT INTO steps VALUES(5,1,'sms','quo.send_sms','dry_run','{"method":"POST","url":"https://api.openphone.com/v1/messages","body":{"from":"${QUO_FROM}","to":["+15555550100"],"content":"Hi Ada!"}}',NULL,NULL,0,NULL,NULL,NULL,NULL,1790000001.0,1790000001.0);
CREATE TABLE state (
    scope TEXT NOT NULL,            -- table:<recipe>, schedule:<recipe>
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
INSERT INTO state VALUES('recipe-versions','bfb4e0e2d70f106e','{"name": "lead", "path": "/srv/recipes/lead.yaml", "text": "\nname: lead\ntrigger:\n  webhook: {path: /hooks/lead, verify: {scheme: none}}\nactions:\n  - id: welcome\n    loops.send_event:\n      email: /Email\n      eventName: signup\n  - id: sms\n    quo.send_sms:\n      from: ${QUO_FROM}\n      to: [/Phone]\n      content: \"Hi {/First Name}!\"\n"}');
ANALYZE sqlite_schema;
INSERT INTO sqlite_stat1 VALUES('steps','sqlite_autoindex_steps_1','10 2 1');
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_recipe ON runs (recipe);
CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('pending', 'running');
CREATE VIEW step_log AS
    SELECT runs.id AS run_id, steps.* FROM steps JOIN runs ON runs.seq = steps.run_seq;
COMMIT;
