"""What the agent does to its host to fix a vulnerability, one module per kind of change.

`package_upgrade` (over `package_managers` and `versions`) for FixMethod 0 with packages,
`windows_kb` for FixMethod 0 with a KB, `services` for FixMethod 1. Each runs its commands
through `vulfix.agent.commands.CommandRunner` and returns a `work_result.WorkResult`.
"""
