"""Render one action of a recipe for one row into the request it would send."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from automations.actions import ACTIONS
from automations.model import Action, Recipe
from automations.outbound import OutboundRequest
from automations.templates import RenderContext

__all__ = ["PreviewEnv", "render_action"]


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
