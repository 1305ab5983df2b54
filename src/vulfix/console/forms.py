"""What the console's forms do: sign in and out, retry, cancel, create a fix task.

Every form carries the session's CSRF token; a POST without it changes nothing (403). Actions
go through the API's own handlers, so a read-only key is refused here exactly as on the wire.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from vulfix.console.context import ConsoleContext
from vulfix.console.pages import fix_form, signed_in
from vulfix.console.rendering import (
    Visitor,
    render,
    safe_next,
)
from vulfix.console.sessions import CSRF_FIELD, check_key, csrf_valid, fresh_session
from vulfix.tcapi import ApiError

# Forms are small: a fix flow for a few thousand hosts fits in FORM_LIMIT.
FORM_LIMIT = 1024 * 1024
SIGN_IN_FORM_LIMIT = 4096
Handler = Callable[[Request], Awaitable[Response]]
FormHandler = Callable[[Request, Visitor, FormData], Awaitable[Response]]


def csrf_refused(ctx: ConsoleContext, request: Request) -> Response:
    return render(ctx, request, "csrf.html", session=ctx.sessions.read(request), status_code=403)


def posted(ctx: ConsoleContext, handler: FormHandler) -> Handler:
    """A signed-in visitor's form, once its CSRF token checks out."""

    async def checked(request: Request, visitor: Visitor) -> Response:
        form = await read_form(request, FORM_LIMIT, max_fields=10_000)
        if not csrf_valid(visitor.session, form.get(CSRF_FIELD)):
            return csrf_refused(ctx, request)
        return await handler(request, visitor, form)

    return signed_in(ctx, checked)


class FormTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, "The form is too large.")


async def read_form(request: Request, limit: int, *, max_fields: int) -> FormData:
    """The posted form, refused (413) unless it declares a length within `limit`: browsers
    always do, and nothing unauthenticated may make the server buffer more."""
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > limit:
        raise FormTooLarge()
    try:
        return await request.form(max_files=0, max_fields=max_fields, max_part_size=limit)
    except ClientDisconnect:  # the browser went away mid-body: nothing to do, nobody to tell
        raise HTTPException(400, "The form did not arrive whole.") from None


def refusal_status(error: ApiError, otherwise: int) -> int:
    return 403 if error.error_code.startswith("UnauthorizedOperation") else otherwise


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def form_routes(ctx: ConsoleContext) -> dict[str, Handler]:
    async def sign_in_page(request: Request) -> Response:
        return render(ctx, request, "sign_in.html", session=ctx.sessions.read(request),
                      next=safe_next(request.query_params.get("next")), error="")  # fmt: skip

    async def sign_in(request: Request) -> Response:
        session = ctx.sessions.read(request)
        form = await read_form(request, SIGN_IN_FORM_LIMIT, max_fields=20)
        if not csrf_valid(session, form.get(CSRF_FIELD)):
            return csrf_refused(ctx, request)
        target = safe_next(_text(form, "next"))
        client = request.client.host if request.client else "-"
        if ctx.sign_in_rate and not await ctx.rate_limiter.allow(
            f"console-sign-in:{client}", ctx.sign_in_rate
        ):
            error = "Too many sign-in attempts: wait a second and try again."
            return render(ctx, request, "sign_in.html", session=session, next=target,
                          error=error, status_code=429)  # fmt: skip
        credential = await check_key(
            ctx.credentials, _text(form, "secret_id"), _text(form, "secret_key")
        )
        if credential is None:
            error = "That SecretId and SecretKey do not match an enabled key."
            return render(ctx, request, "sign_in.html", session=session, next=target,
                          error=error, status_code=401)  # fmt: skip
        response = RedirectResponse(target, status_code=303)
        ctx.sessions.write(response, request, fresh_session(credential.secret_id))
        return response

    async def sign_out(request: Request, visitor: Visitor, form: FormData) -> Response:
        response = RedirectResponse("/console/sign-in", status_code=303)
        ctx.sessions.clear(response, request)
        return response

    async def act(
        request: Request, visitor: Visitor, action: str, notice: str, **params: Any
    ) -> Response:
        fix_id = request.path_params["fix_id"]
        try:
            await ctx.call(visitor.credential, action, FixId=fix_id, **params)
        except ApiError as error:
            return render(ctx, request, "refused.html", visitor=visitor, action=action,
                          error=error, back=f"/console/tasks/{fix_id}",
                          status_code=refusal_status(error, 409))  # fmt: skip
        return RedirectResponse(f"/console/tasks/{fix_id}?notice={notice}", status_code=303)

    async def retry_snapshot(request: Request, visitor: Visitor, form: FormData) -> Response:
        return await act(request, visitor, "RetryCreateSnapshot", "snapshot-retried",
                         Quuid=_text(form, "quuid"), Id=_text(form, "id"))  # fmt: skip

    async def retry_fix(request: Request, visitor: Visitor, form: FormData) -> Response:
        return await act(request, visitor, "RetryVulFix", "fix-retried",
                         Quuid=_text(form, "quuid"), VulId=_text(form, "vul_id"),
                         KbId=_text(form, "kb_id") or "0")  # fmt: skip

    async def cancel(request: Request, visitor: Visitor, form: FormData) -> Response:
        return await act(request, visitor, "CancelVulFix", "cancelled")

    async def create_fix(request: Request, visitor: Visitor, form: FormData) -> Response:
        vul_id: int = request.path_params["vul_id"]
        quuids = [q for q in form.getlist("quuids") if isinstance(q, str) and q]
        save_days = _text(form, "save_days")
        fields = {"quuids": quuids, "save_days": save_days,
                  "snapshot_name": _text(form, "snapshot_name"),
                  "fix_method": _text(form, "fix_method")}  # fmt: skip
        if not quuids:
            return await fix_form(ctx, request, visitor, vul_id, form=fields,
                                  error="Pick at least one host.", status_code=400)  # fmt: skip
        if save_days == "0" and not form.get("confirm_without_snapshot"):
            stale = await stale_hosts(ctx, visitor, quuids)
            if stale:
                return await fix_form(ctx, request, visitor, vul_id, form=fields,
                                      stale_hosts=stale, status_code=409)  # fmt: skip
        item: dict[str, Any] = {"Quuids": quuids, "VulId": vul_id}
        if fields["fix_method"]:
            item["FixMethod"] = fields["fix_method"]
        params: dict[str, Any] = {"CreateVulFixTaskQuuids": [item], "SaveDays": save_days}
        if fields["snapshot_name"]:
            params["SnapshotName"] = fields["snapshot_name"]
        try:
            created = await ctx.call(visitor.credential, "CreateVulFix", **params)
        except ApiError as error:
            return await fix_form(ctx, request, visitor, vul_id, form=fields,
                                  error=f"{error.error_code}: {error.message_en}",
                                  status_code=refusal_status(error, 400))  # fmt: skip
        return RedirectResponse(
            f"/console/tasks/{created['FixId']}?notice=created", status_code=303
        )

    async def snapshot_check(request: Request, visitor: Visitor, form: FormData) -> Response:
        quuids = [q for q in form.getlist("quuids") if isinstance(q, str) and q]
        return JSONResponse({"stale": await stale_hosts(ctx, visitor, quuids)})

    return {
        "sign_in_page": sign_in_page,
        "sign_in": sign_in,
        "sign_out": posted(ctx, sign_out),
        "retry_snapshot": posted(ctx, retry_snapshot),
        "retry_fix": posted(ctx, retry_fix),
        "cancel": posted(ctx, cancel),
        "create_fix": posted(ctx, create_fix),
        "snapshot_check": posted(ctx, snapshot_check),
    }


async def stale_hosts(ctx: ConsoleContext, visitor: Visitor, quuids: list[str]) -> list[str]:
    """The picked hosts with no snapshot from the last 24 h (named as on screen), per
    DescribeMachineSnapshot: what `SaveDays` 0 would leave without a recent restore point."""
    now = ctx.clock.now()
    fresh: set[str] = set()
    for start in range(0, len(quuids), 100):
        batch = quuids[start : start + 100]
        answer = await ctx.call(visitor.credential, "DescribeMachineSnapshot", Quuids=batch,
                                Type=0, Limit=100, Offset=0)  # fmt: skip
        if answer["SnapshotCheck"]:
            fresh.update(batch)
            continue
        for snapshot in answer["List"]:
            created = datetime.strptime(snapshot["CreateTime"], "%Y-%m-%d %H:%M:%S")
            if now - created.replace(tzinfo=ctx.display.zone) < timedelta(hours=24):
                fresh.add(snapshot["Quuid"])
    return [quuid for quuid in quuids if quuid not in fresh]
