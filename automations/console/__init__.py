"""The console: the runs, recipes and connections of a running ``automations run`` as web pages.

Server-rendered HTML (Starlette + Jinja2, autoescaped ``.html`` templates in ``templates/``), one
small script of its own for live updates (``static/console.js``), no CDN. It listens on its own
address (``--ui-host``/``--ui-port``, 127.0.0.1:8788 by default), never the webhook port.

- ``app``: the application, its guard (session, host, origin) and its security headers;
- ``auth``: the token, the signed session cookie, the bind rule;
- ``runs``: the runs list, one run, the event stream;
- ``operate``: replay, resolve, approve, discard, bulk replay (the functions the CLI calls);
- ``overview``: the recipes and connections pages;
- ``filters``, ``masking``, ``render``: the list's filters, masked contact details, text.

It reads runs through the store port on a connection and a thread of its own, and what only the
running process knows through ``host.ConsoleHost``.
"""

from __future__ import annotations

from automations.console.app import Console, build_console
from automations.console.auth import TOKEN_ENV, Gate, check_bind
from automations.console.host import ConsoleHost, RunnerHost

__all__ = [
    "TOKEN_ENV",
    "Console",
    "ConsoleHost",
    "Gate",
    "RunnerHost",
    "build_console",
    "check_bind",
]
