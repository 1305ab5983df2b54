"""MaxConcurrency and MaxErrors: a number of hosts or a percentage of them (as AWS SSM).

Rounding: a concurrency percentage rounds up, and is at least 1, so a task always makes
progress (10 % of 5 hosts is 1 host at a time); an error percentage rounds down, so a budget
never allows more failures than asked (10 % of 15 hosts is 1 failed host). The budget is
exceeded when the failed hosts are MORE than it: MaxErrors "0" stops at the first failure.
An empty value means no limit, as the cloud API behaves.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from vulfix.fixing.errors import MalformedBudget

_FORM = re.compile(r"(\d{1,9})(%?)")


@dataclass(frozen=True, slots=True)
class Budget:
    """A parsed budget; `None` amount means unlimited."""

    amount: int | None
    percent: bool

    @classmethod
    def parse(cls, text: str, name: str) -> Budget:
        text = text.strip()
        if not text:
            return cls(None, False)
        match = _FORM.fullmatch(text)
        if not match or (match.group(2) and int(match.group(1)) > 100):
            raise MalformedBudget(
                f"{name} must be a number of hosts or a percentage from 0% to 100%, not {text!r}.",
                f"{name} 必须是主机数量或 0% 到 100% 的百分比，而不是 {text!r}。",
            )
        return cls(int(match.group(1)), bool(match.group(2)))

    def concurrency(self, hosts: int) -> int:
        if self.amount is None:
            return hosts
        if self.percent:
            return max(1, math.ceil(hosts * self.amount / 100))
        return max(1, self.amount)

    def errors_allowed(self, hosts: int) -> int | None:
        if self.amount is None:
            return None
        if self.percent:
            return math.floor(hosts * self.amount / 100)
        return self.amount

    def exceeded(self, failed_hosts: int, hosts: int) -> bool:
        allowed = self.errors_allowed(hosts)
        return allowed is not None and failed_hosts > allowed


def has_budgets(max_concurrency: str, max_errors: str) -> bool:
    """Whether a task (its budgets as stored, stripped) keeps hosts waiting for admission, to
    let them in as others finish or stop them once the error budget is spent. Without a
    budget every host is admitted when the task is created."""
    return bool(max_concurrency or max_errors)
