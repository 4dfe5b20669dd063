"""``python -m automations.intake READ_FD WRITE_FD PARENT_PID``: the runner starts this."""

from automations.intake.child import main

main()
