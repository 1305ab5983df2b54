"""What every fake program shares: the host's state file, the invocation log, injected faults.

A fake reads `$VULFIX_FAKE_HOST` (JSON written by `tests/agent/fake_host.py`), appends its
argv to `$VULFIX_FAKE_LOG` (one JSON list a line), and before doing anything honours
`state["failures"]`: the first entry whose program (and subcommand, when given) matches makes
it print `output` to stderr and exit with `exit`, as a real failing tool would.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

STATE_VARIABLE = "VULFIX_FAKE_HOST"
LOG_VARIABLE = "VULFIX_FAKE_LOG"


class Invocation:
    def __init__(self) -> None:
        self.program = Path(sys.argv[0]).name
        self.args = sys.argv[1:]
        self.state_path = Path(os.environ[STATE_VARIABLE])
        self.state: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        with open(os.environ[LOG_VARIABLE], "a", encoding="utf-8") as log:
            log.write(json.dumps([self.program, *self.args]) + "\n")
        self._inject_faults()

    def _inject_faults(self) -> None:
        for fault in self.state.get("failures", []):
            if fault["program"] != self.program:
                continue
            if fault.get("subcommand") and fault["subcommand"] not in self.args:
                continue
            time.sleep(fault.get("sleep", 0))
            self.fail(fault.get("output", ""), fault.get("exit", 1))

    def save(self) -> None:
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state, indent=1), encoding="utf-8")
        temporary.replace(self.state_path)

    def fail(self, message: str, exit_code: int) -> NoReturn:
        if message:
            print(message, file=sys.stderr)
        sys.exit(exit_code)


def say(*lines: str) -> None:
    for line in lines:
        print(line)


def positional(args: list[str], takes_value: frozenset[str] = frozenset()) -> list[str]:
    """The words that are not options, skipping the value of each option in `takes_value`."""
    words: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
    return words


def option_value(args: list[str], *names: str) -> str | None:
    """The value of `--name=value`, `--name value` or `-f value` for any of `names`."""
    for index, arg in enumerate(args):
        for name in names:
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
            if arg == name and index + 1 < len(args):
                return args[index + 1]
    return None


def unescape(format_text: str) -> str:
    """dpkg-query and rpm expand `\\n` and `\\t` in their format strings themselves."""
    return format_text.replace("\\n", "\n").replace("\\t", "\t")
