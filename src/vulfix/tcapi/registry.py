"""Dispatch is a table: each action name maps to its request type and handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from vulfix.tcapi.credentials import Caller

# A handler answers a typed response, or `msgspec.Raw` bytes it encoded (and cached) itself.
Handler = Callable[[Any, Caller], Awaitable[msgspec.Struct | msgspec.Raw]]


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    request_type: type[msgspec.Struct]
    handler: Handler
    mutating: bool


class ApiService:
    """One TencentCloud-style product: its name (the signing service), version and actions."""

    def __init__(
        self, name: str, version: str, *, parse_error_code: str = "InvalidParameter"
    ) -> None:
        self.name = name
        self.version = version
        # The code for a body or flattened parameters that cannot be parsed at all.
        self.parse_error_code = parse_error_code
        self.actions: dict[str, Action] = {}

    def add(
        self, name: str, request_type: type[msgspec.Struct], handler: Handler, *, mutating: bool
    ) -> None:
        if name in self.actions:
            raise ValueError(f"action {name} registered twice")
        self.actions[name] = Action(name, request_type, handler, mutating)
