"""`/console`: the routes of the web console, its templates and static files."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from vulfix.console.context import STATIC, TEMPLATES, ConsoleContext
from vulfix.console.forms import form_routes
from vulfix.console.pages import page_routes


def console_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.autoescape = True  # every value on a page is escaped, .html or not
    return templates


def console_routes(ctx: ConsoleContext) -> list[BaseRoute]:
    pages = page_routes(ctx)
    forms = form_routes(ctx)

    async def home(_request: Request) -> Response:
        return RedirectResponse("/console/tasks", status_code=303)

    return [
        Route("/", home),
        Route("/sign-in", forms["sign_in_page"], methods=["GET"]),
        Route("/sign-in", forms["sign_in"], methods=["POST"]),
        Route("/sign-out", forms["sign_out"], methods=["POST"]),
        Route("/tasks", pages["tasks"]),
        Route("/tasks/{fix_id:int}", pages["task"]),
        Route("/tasks/{fix_id:int}/log", pages["host_log"]),
        Route("/tasks/{fix_id:int}/retry-snapshot", forms["retry_snapshot"], methods=["POST"]),
        Route("/tasks/{fix_id:int}/retry-fix", forms["retry_fix"], methods=["POST"]),
        Route("/tasks/{fix_id:int}/cancel", forms["cancel"], methods=["POST"]),
        Route("/hosts", pages["hosts"]),
        Route("/vulnerabilities", pages["vulnerabilities"]),
        Route("/vulnerabilities/{vul_id:int}", pages["vulnerability"]),
        Route("/vulnerabilities/{vul_id:int}/fix", forms["create_fix"], methods=["POST"]),
        Route(
            "/vulnerabilities/{vul_id:int}/snapshot-check",
            forms["snapshot_check"],
            methods=["POST"],
        ),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="console-static"),
    ]
