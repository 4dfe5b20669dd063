"""automations: declarative recipes from tables, webhooks and schedules to Quo and Loops."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
