"""The agent API's endpoints served straight from ASGI.

A fleet's requests are the bulk of a server's traffic, and each is small: through Starlette's
middleware, router and mounts, a poll spent more time being routed than answered (at 10 000
simulated hosts, most of the server's CPU). `AgentDispatch` matches the agent routes itself,
with Starlette's own patterns, and calls their endpoints directly; anything else, a wrong
method included, goes on to the application behind it, which answers as before.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.convertors import Convertor
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("vulfix.agent_api")


@dataclass(frozen=True, slots=True)
class _Endpoint:
    pattern: re.Pattern[str]
    methods: frozenset[str]
    endpoint: Any  # async (Request) -> Response
    convertors: dict[str, Convertor[Any]]


class AgentDispatch:
    def __init__(self, routes: Sequence[BaseRoute], prefix: str, fallback: ASGIApp) -> None:
        self._prefix = prefix
        self._fallback = fallback
        self._endpoints = [
            _Endpoint(
                route.path_regex,
                frozenset(route.methods or ()),
                route.endpoint,
                route.param_convertors,
            )
            for route in routes
            if isinstance(route, Route)
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(self._prefix):
            below = path[len(self._prefix) :]
            for endpoint in self._endpoints:
                match = endpoint.pattern.match(below)
                if match is None:
                    continue
                if scope["method"] in endpoint.methods:
                    await self._serve(endpoint, match, scope, receive, send)
                    return
                break  # the fallback answers 405 with the allowed methods
        await self._fallback(scope, receive, send)

    async def _serve(
        self, endpoint: _Endpoint, match: re.Match[str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        params = match.groupdict()
        for name, convertor in endpoint.convertors.items():
            params[name] = convertor.convert(params[name])
        # In place, as Starlette's router updates a request's scope: the scope is this
        # request's alone.
        scope["path_params"] = params
        try:
            response = await endpoint.endpoint(Request(scope, receive))
        except Exception:
            # As Starlette's error middleware would: a bare 500 (agents retry any 5xx), and the
            # traceback in the log only.
            log.exception("agent API request failed: %s %s", scope["method"], scope["path"])
            response = PlainTextResponse("Internal Server Error", status_code=500)
        await response(scope, receive, send)
