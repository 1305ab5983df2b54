"""The console's pages: fix tasks, one task, hosts, vulnerabilities and the fix flow."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vulfix.console.context import ConsoleContext
from vulfix.console.rendering import (
    SignInRequired,
    Visitor,
    render,
    sign_in_redirect,
    visitor_of,
)
from vulfix.tcapi import ApiError

PAGE_SIZE = 20
Page = Callable[[Request], Awaitable[Response]]
VisitorPage = Callable[[Request, Visitor], Awaitable[Response]]


def signed_in(ctx: ConsoleContext, page: VisitorPage) -> Page:
    """The page for a signed-in visitor; anyone else goes to the sign-in form."""

    async def guarded(request: Request) -> Response:
        try:
            visitor = await visitor_of(ctx, request)
        except SignInRequired:
            return sign_in_redirect(request)
        return await page(request, visitor)

    return guarded


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, min(int(raw), 10**6)) if raw.isdigit() else 1


@dataclass(frozen=True, slots=True)
class Paging:
    page: int
    pages: int
    total: int


def pagination(number: int, total: int) -> Paging:
    return Paging(number, max(1, math.ceil(total / PAGE_SIZE)), total)


def not_found(ctx: ConsoleContext, request: Request, visitor: Visitor, what: str) -> Response:
    return render(ctx, request, "not_found.html", visitor=visitor, what=what, status_code=404)


def page_routes(ctx: ConsoleContext) -> dict[str, Page]:
    async def tasks(request: Request, visitor: Visitor) -> Response:
        number = page_number(request)
        account = visitor.credential.account_id
        found = await ctx.overview.fix_id_page(account, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        rows = []
        for fix_id in found.items:
            try:
                rows.append(
                    await ctx.call(visitor.credential, "DescribeVulFixStatus", FixId=fix_id)
                )
            except ApiError:
                continue  # removed by retention since the page was read
        return render(
            ctx, request, "tasks.html", visitor=visitor, tasks=rows,
            paging=pagination(number, found.total),
        )  # fmt: skip

    async def task(request: Request, visitor: Visitor) -> Response:
        fix_id = _path_id(request, "fix_id")
        try:
            status = await ctx.call(visitor.credential, "DescribeVulFixStatus", FixId=fix_id)
        except ApiError:
            return not_found(ctx, request, visitor, f"fix task {fix_id}")
        return render(
            ctx, request, "task.html", visitor=visitor, task=status, notice=_notice(request)
        )

    async def host_log(request: Request, visitor: Visitor) -> Response:
        fix_id = _path_id(request, "fix_id")
        quuid = request.query_params.get("quuid", "")
        vul_id = request.query_params.get("vul_id", "")
        try:
            log = await ctx.call(
                visitor.credential, "DescribeVulFixHostLog", FixId=fix_id, Quuid=quuid,
                VulId=vul_id,
            )  # fmt: skip
        except ApiError as error:
            return render(ctx, request, "host_log.html", visitor=visitor, error=error.message_en,
                          fix_id=fix_id, quuid=quuid, log=None, status_code=404)  # fmt: skip
        return render(
            ctx, request, "host_log.html", visitor=visitor, log=log, fix_id=fix_id, quuid=quuid,
            error="",
        )  # fmt: skip

    async def hosts(request: Request, visitor: Visitor) -> Response:
        number = page_number(request)
        found = await ctx.overview.host_page(
            visitor.credential.account_id, (number - 1) * PAGE_SIZE, PAGE_SIZE
        )
        now = ctx.clock.now()
        rows = [
            {"host": host, "online": host.last_seen_at is not None
             and now - host.last_seen_at <= ctx.offline_after}
            for host in found.items
        ]  # fmt: skip
        return render(
            ctx, request, "hosts.html", visitor=visitor, hosts=rows, display=ctx.display,
            paging=pagination(number, found.total),
        )  # fmt: skip

    async def vulnerabilities(request: Request, visitor: Visitor) -> Response:
        number = page_number(request)
        found = await ctx.overview.vulnerability_page(
            visitor.credential.account_id, (number - 1) * PAGE_SIZE, PAGE_SIZE
        )
        return render(
            ctx, request, "vulnerabilities.html", visitor=visitor, vulnerabilities=found.items,
            paging=pagination(number, found.total),
        )  # fmt: skip

    async def vulnerability(request: Request, visitor: Visitor) -> Response:
        return await fix_form(ctx, request, visitor, _path_id(request, "vul_id"))

    return {
        "tasks": signed_in(ctx, tasks),
        "task": signed_in(ctx, task),
        "host_log": signed_in(ctx, host_log),
        "hosts": signed_in(ctx, hosts),
        "vulnerabilities": signed_in(ctx, vulnerabilities),
        "vulnerability": signed_in(ctx, vulnerability),
    }


async def fix_form(
    ctx: ConsoleContext,
    request: Request,
    visitor: Visitor,
    vul_id: int,
    *,
    form: dict[str, Any] | None = None,
    error: str = "",
    stale_hosts: list[str] | None = None,
    status_code: int = 200,
) -> Response:
    """The fix flow of one vulnerability: its hosts to pick, retention, and what went wrong."""
    try:
        answer = await ctx.call(visitor.credential, "DescribeCanFixVulMachine", VulIds=[vul_id])
    except ApiError:
        answer = {"VulInfo": []}
    if not answer["VulInfo"]:
        return not_found(ctx, request, visitor, f"vulnerability {vul_id}")
    vul = answer["VulInfo"][0]
    host_names = {host["Quuid"]: host["HostName"] or host["Quuid"] for host in vul["HostList"]}
    return render(
        ctx, request, "vulnerability.html", visitor=visitor, vul=vul, host_names=host_names,
        form=form or {}, error=error, stale_hosts=stale_hosts or [], status_code=status_code,
    )  # fmt: skip


def _path_id(request: Request, name: str) -> int:
    value: int = request.path_params[name]
    return value


NOTICES = {
    "snapshot-retried": "The snapshot will be taken again.",
    "fix-retried": "The fix will run again.",
    "cancelled": "The task was cancelled: nothing more will start.",
    "created": "The fix task was created.",
}


def _notice(request: Request) -> str:
    return NOTICES.get(request.query_params.get("notice", ""), "")
