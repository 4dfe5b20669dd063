"""Recipes loaded, watched and hot-reloaded; the trigger sources (tables, schedules) started
and restarted with them.

Every change to a recipe file reloads the folder (``registry.reload``: unchanged files keep their
compiled value); whatever goes wrong is logged with the files, shown in ``/healthz``, and the
recipes running before keep running. A table or schedule source whose trigger did not change
keeps its position and its schedule.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from watchfiles import awatch

from automations.diagnostics import Diagnostic, Severity
from automations.model import ScheduleTrigger, TableTrigger
from automations.recipes.compiler import RECIPE_SUFFIXES, display_name, missing_variables
from automations.runner.registry import RecipeSet, reload
from automations.runner.sources import run_schedule, run_table, supervised

if TYPE_CHECKING:
    from automations.runner.service import Runner

__all__ = [
    "apply_recipe_set",
    "folder_identity",
    "log_diagnostics",
    "reload_recipes",
    "start_sources",
    "watch_recipes",
]

log = logging.getLogger("automations.runner")

#: Warnings that a variable is not set: a dry run lists the variables once instead.
_UNSET_CODES = frozenset({"ENV001", "ENV002"})
_TABLE_SUFFIXES = (".csv", ".jsonl", ".ndjson")


def apply_recipe_set(runner: Runner, new: RecipeSet, *, initial: bool = False) -> None:
    log_diagnostics(runner, new)
    added: set[str] = set()
    if not initial:
        added = set(new.by_name) - set(runner.recipes.by_name)
        removed = set(runner.recipes.by_name) - set(new.by_name)
        changed = {
            n
            for n, r in new.by_name.items()
            if n in runner.recipes.by_name and runner.recipes.by_name[n] is not r
        }
        if added or removed or changed:
            log.info(
                "recipes reloaded: added %s, changed %s, removed %s",
                sorted(added) or "-",
                sorted(changed) or "-",
                sorted(removed) or "-",
            )
    runner.recipes = new
    for listener in runner.recipe_listeners:
        listener(new)
    # runs that found their recipe gone wait in the store; it is back, so they run now
    for name in added:
        runner.dispatcher.wake(name)
    if not initial:
        runner.dispatcher.refresh()  # an edited recipe may use other connections


def log_diagnostics(runner: Runner, new: RecipeSet) -> None:
    """Each file's findings when they change. In a dry run, the variables that only real
    runs need are not warned about recipe by recipe: one line lists them all."""
    quiet = _UNSET_CODES if runner.options.dry_run else frozenset()
    for file, diags in new.diagnostics.items():
        old = runner.recipes.diagnostics.get(file)
        if diags != old:
            for d in diags:
                if d.code not in quiet:
                    (log.error if d.is_error else log.warning)("%s", d.format())
            if old and any(d.is_error for d in old) and not any(d.is_error for d in diags):
                log.info("%s: no errors now", file)
    if runner.options.dry_run:
        recipes = new.by_name.values()
        unset = sorted({n for r in recipes for n in missing_variables(r, runner.env)})
        if unset != runner.unset:
            runner.unset = unset
            if unset:
                log.warning(
                    "dry run: not set here (only real runs, and webhooks verified with "
                    "them, need them): %s",
                    ", ".join(unset),
                )


async def start_sources(runner: Runner) -> None:
    wanted = {
        r.name: r
        for r in runner.recipes.by_name.values()
        if isinstance(r.trigger, TableTrigger | ScheduleTrigger) and runner.lead.leading
    }
    for name in list(runner.sources):
        trig, task = runner.sources[name]
        if name not in wanted or wanted[name].trigger != trig:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            del runner.sources[name]
            runner.source_errors.pop(name, None)
    waits = []
    for name, recipe in wanted.items():
        if name in runner.sources:
            continue  # unchanged trigger: its position and schedule are untouched
        started = asyncio.Event()
        source = (
            functools.partial(
                run_table,
                recipe,
                runner.store,
                runner.accept_many,
                started,
                functools.partial(_source_error, runner),
            )
            if isinstance(recipe.trigger, TableTrigger)
            else functools.partial(run_schedule, recipe, runner.store, runner.accept_many, started)
        )
        # a store error ends one pass of the source, which starts again (``supervised``)
        task = asyncio.get_running_loop().create_task(
            supervised(name, source), name=f"source:{name}"
        )
        task.add_done_callback(_log_crash)
        runner.sources[name] = (recipe.trigger, task)
        waits.append(started.wait())
    if waits:
        await asyncio.wait_for(asyncio.gather(*waits), timeout=30)


def _source_error(runner: Runner, name: str, error: str | None) -> None:
    if error is None:
        runner.source_errors.pop(name, None)
    else:
        runner.source_errors[name] = error


async def watch_recipes(runner: Runner, watched: tuple[int, int] | None) -> None:
    """Reload on every change to a recipe file, for as long as the runner runs: whatever
    goes wrong is logged with the files and shown in ``/healthz``, and watching goes on.

    The folder itself may go (its recipes are then dropped, as deleted files are) and come
    back, or be replaced by another (a deploy that renames a fresh checkout into place):
    every 2 s without changes its identity is checked, and a new folder is loaded and
    watched from then on."""
    gone_logged = False
    while not runner.stopping.is_set():
        identity = folder_identity(runner.directory)
        if identity is None:
            if not gone_logged:
                log.warning("recipes folder %s is gone; waiting for it", runner.directory)
                gone_logged = True
            await asyncio.sleep(1.0)
            continue
        gone_logged = False
        if identity != watched:
            watched = identity
            log.info("recipes folder %s is new: loading it", runner.directory)
            await reload_recipes(runner, [str(runner.directory)])
        try:
            async for changes in awatch(
                runner.directory,
                debounce=50,
                step=10,
                recursive=True,
                stop_event=runner.stopping,
                rust_timeout=2000,
                yield_on_timeout=True,
            ):
                suffixes: tuple[str, ...] = RECIPE_SUFFIXES
                if runner.recipes.errors():
                    # a recipe refused for its table's header (REF001, TBL002...) loads
                    # once the table is fixed
                    suffixes = (*RECIPE_SUFFIXES, *_TABLE_SUFFIXES)
                files = sorted({p for _, p in changes if Path(p).suffix.lower() in suffixes})
                if files:
                    await reload_recipes(runner, files)
                if folder_identity(runner.directory) != watched:
                    break  # removed or replaced: watch what is there now
        except Exception as exc:  # the watch itself failed (inotify limits, ...)
            log.error(
                "watching %s for recipe changes failed (%s: %s); watching again in 1 s",
                runner.directory,
                exc.__class__.__name__,
                exc,
            )
            await asyncio.sleep(1.0)


async def reload_recipes(runner: Runner, files: Sequence[str]) -> None:
    """One hot reload after changes to ``files`` (absolute paths); never raises.

    The files are read and compiled on a worker thread (one saved file: milliseconds; a folder
    replaced by a deploy: 10,000 recipes in about 3 s, which on the event loop stalled every run
    executing meanwhile); the new set is applied on the loop. Reloads never overlap: the watcher
    waits for each."""
    try:
        new = await asyncio.to_thread(
            functools.partial(
                reload,
                runner.recipes,
                runner.directory,
                runner.env,
                tables=runner.tables,
                changed=files,
            )
        )
        runner.apply_recipes(new)
        runner.reloads += 1
        await start_sources(runner)
    except Exception as exc:
        names = [display_name(Path(f)) for f in files]
        log.exception(
            "hot reload after a change to %s failed; the recipes running before keep "
            "running and the next change reloads again",
            ", ".join(names),
        )
        message = (
            f"hot reload failed unexpectedly ({exc.__class__.__name__}: {exc}); the "
            "version running before keeps running; save the file again to retry"
        )
        runner.reload_errors = {
            n: (Diagnostic(n, 1, 1, Severity.ERROR, "INT001", message),) for n in names
        }
    else:
        runner.reload_errors = {}


def folder_identity(folder: Path) -> tuple[int, int] | None:
    """The folder's device and inode (``None`` if it is not there): a folder replaced by another
    of the same name has a new identity."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("trigger source %s stopped: %r", task.get_name(), task.exception())
