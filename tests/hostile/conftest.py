"""The acceptance tier's fixtures (a runner subprocess, loopback fakes), for the hostile corpus."""

from tests.acceptance.conftest import fakes, recipes_dir, start_runner

__all__ = ["fakes", "recipes_dir", "start_runner"]
