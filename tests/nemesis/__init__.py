"""Several runners on one PostgreSQL under faults, Jepsen-style: a recorded history and a
checker.

- ``cluster``: a private PostgreSQL server in a temporary directory, which a test may restart
  (never the shared ``AUTOMATIONS_TEST_PG`` server other tests use);
- ``nodes``: ``automations run`` processes, each with its own node id and port;
- ``nemesis``: the seeded faults (SIGKILL and restart, SIGSTOP past the lease then SIGCONT,
  ``pg_terminate_backend`` of a node's connections, a PostgreSQL crash and restart);
- ``history``: what the fakes received, what the clients sent and what the database holds,
  and the checker of the promises the runners keep whatever the faults.
"""
