"""Render one action of a recipe for one row into the request it would send."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from automations.actions import ACTIONS
from automations.model import Action, Recipe
from automations.outbound import OutboundRequest
from automations.redact import Redactor, restore_placeholders
from automations.templates import RenderContext

__all__ = ["PreviewEnv", "render_action", "shown_request"]


class PreviewEnv(Mapping[str, str]):
    """The environment for previews and dry runs: an unset variable reads as ``${NAME}``, so a
    newcomer without API keys still sees every request (with the gap marked)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.unset: set[str] = set()

    def __getitem__(self, name: str) -> str:
        try:
            return self._env[name]
        except KeyError:
            self.unset.add(name)
            return "${" + name + "}"

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)

    def __contains__(self, name: object) -> bool:
        return True


def render_action(
    recipe: Recipe,
    action: Action,
    index: int,
    row: Any,
    env: Mapping[str, str],
    steps: Mapping[str, Any],
    *,
    run_id: str,
) -> OutboundRequest:
    """The request ``action`` sends for ``row``.

    Raises ``ConfigError`` (an unset variable) or ``RenderError`` (a value the vendor would
    reject, such as a phone number that cannot be read); either way nothing is sent.
    """
    ctx = RenderContext(row if isinstance(row, Mapping) else {}, env, steps)
    body = action.params.render(ctx)
    return ACTIONS[action.kind].build(
        body, run_id=run_id, step_index=index, phone_region=recipe.phone_region
    )


class _Placeholders(Mapping[str, str]):
    """``env`` with the variables ``names`` reading as ``${NAME}``."""

    def __init__(self, env: Mapping[str, str], names: frozenset[str]) -> None:
        self._env = env
        self._names = names

    def __getitem__(self, name: str) -> str:
        return "${" + name + "}" if name in self._names else self._env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)

    def __contains__(self, name: object) -> bool:
        return name in self._names or name in self._env


def shown_request(
    recipe: Recipe,
    action: Action,
    index: int,
    row: Any,
    env: Mapping[str, str],
    steps: Mapping[str, Any],
    shown: dict[str, Any],
    short: frozenset[str],
    *,
    run_id: str,
    describe: Callable[[OutboundRequest], dict[str, Any]],
) -> dict[str, Any]:
    """``shown`` (the audit's description of a request) with the short secrets ``short``
    masked where the recipe substitutes them: the request is rendered again with ``${NAME}`` in
    their place and described by ``describe``. If that copy cannot be rendered (a placeholder is
    not a valid phone number, say), every occurrence of their values in ``shown`` is masked
    instead."""
    try:
        again = render_action(
            recipe, action, index, row, _Placeholders(env, short), steps, run_id=run_id
        )
        out = describe(again)
    except Exception:  # any failure: the blunt mask below is still correct
        return dict(Redactor({n: env[n] for n in short if n in env}, min_len=1).value(shown))
    out["url"] = restore_placeholders(out["url"])
    return out
