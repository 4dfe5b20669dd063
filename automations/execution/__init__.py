"""Running a recipe for one event: row, condition, rendering, sending, auditing."""
