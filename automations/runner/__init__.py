"""The long-running service behind ``automations run``: triggers in, runs out, exactly once."""
