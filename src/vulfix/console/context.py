"""What every console handler needs, and how it calls the API in-process.

The console reads and acts through the same CWP actions the API serves (`tcapi.invoke`), for
the signed-in key: its numbers are DescribeVulFixStatus's numbers, and a read-only key is
refused exactly as on the wire. Only the lists the cloud API has no action for (tasks, hosts,
vulnerabilities) come from `OverviewReader`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.templating import Jinja2Templates

from vulfix.console.sessions import SessionCodec
from vulfix.cwp.display_time import DisplayClock
from vulfix.fixing.clock import Clock
from vulfix.inventory.overview import OverviewReader
from vulfix.tcapi import (
    ApiError,
    ApiService,
    Credential,
    CredentialSource,
    RateLimiter,
    invoke_json,
)

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class ConsoleContext:
    service: ApiService
    credentials: CredentialSource
    overview: OverviewReader
    display: DisplayClock
    clock: Clock
    sessions: SessionCodec
    rate_limiter: RateLimiter
    offline_after: timedelta
    # Sign-in attempts per client address and second (0: no limit), against guessing keys.
    sign_in_rate: int
    templates: Jinja2Templates

    async def call(self, credential: Credential, action: str, **params: Any) -> dict[str, Any]:
        """The action's `Response`, as the API would answer this key; raises `ApiError`."""
        registered = self.service.actions.get(action)
        if registered is None:  # a console bug, never a user's input
            raise ApiError(f"no action {action}", code="InternalError")
        return await invoke_json(registered, credential, params, request_id=str(uuid.uuid4()))
