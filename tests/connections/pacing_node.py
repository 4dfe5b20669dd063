"""One node of the shared-pacing tests and bench: a ``SharedRateLimiter`` on a PostgreSQL store,
taking slots of one key as fast as they come for a bounded time, then printing when each was
released (``time.monotonic``, one clock for every process of the machine) as JSON.

    python -m tests.connections.pacing_node URL KEY START END [--hold-after N --hold-s S]

It waits until ``time.monotonic() >= START``, takes slots until ``END``, and stops by itself.
With ``--hold-after N`` it holds the key for ``S`` seconds after its N-th slot (what a 429 with
``Retry-After: S`` does) and reports when.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from automations.connections.pacing import Pacing
from automations.stores.postgres import PostgresStore
from automations.stores.rate_gate import PostgresRateGate


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    store = PostgresStore(args.url)
    pacing = Pacing(PostgresRateGate(store))
    pacer = pacing.pacer(
        args.key, 10.0, guard=args.guard_ms / 1000, clock=time.monotonic, sleep=asyncio.sleep
    )
    times: list[float] = []
    held_at: float | None = None
    try:
        await asyncio.sleep(max(0.0, args.start - time.monotonic()))
        while time.monotonic() < args.end:
            slot = await pacer.acquire()
            times.append(slot.at)
            if args.hold_after and len(times) == args.hold_after:
                held_at = time.monotonic()
                pacer.hold(args.hold_s)
        await asyncio.sleep(0.1)  # the hold's write, if any, is done
    finally:
        pacing.close()
        store.close()
    return {"times": times, "held_at": held_at, "given_up": getattr(pacer, "given_up", 0)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("start", type=float)
    parser.add_argument("end", type=float)
    parser.add_argument("--guard-ms", type=float, default=10.0)
    parser.add_argument("--hold-after", type=int, default=0)
    parser.add_argument("--hold-s", type=float, default=0.0)
    print(json.dumps(asyncio.run(main_async(parser.parse_args()))))


if __name__ == "__main__":
    main()
