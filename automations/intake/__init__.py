"""The webhook intake as a process of its own (``child``), started and supervised by the
runner (``link``), talking over two pipes (``wire``).

Why a process: recording a webhook must never wait for what the runner does meanwhile
(executing runs, scanning tables, pruning history). Threads share one interpreter lock, so a
busy runner slowed every answer; a process has its own, and the operating system shares the
CPUs. The two meet only in the run store: the intake process records each event (a SQLite
store's inbox file, ``stores/sqlite_inbox``; PostgreSQL's ``runs`` table itself), and the
runner claims and executes runs from there as it always did.
"""
