"""The agent routes served straight from ASGI answer exactly as Starlette's router would, and
leave everything else to the application behind them."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from vulfix.agent_api.dispatch import AgentDispatch


async def report(request: Request) -> Response:
    return JSONResponse(
        {"job": request.path_params["job_id"], "next": request.query_params.get("next")}
    )


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug, with a secret detail")


async def elsewhere(request: Request) -> Response:
    return PlainTextResponse("elsewhere")


ROUTES = [
    Route("/jobs/{job_id}/result", report, methods=["POST"]),
    Route("/broken", broken, methods=["GET"]),
]
BEHIND = Starlette(routes=[Route("/healthz", elsewhere), Mount("/agent/v1", routes=ROUTES)])


@pytest.fixture
async def http() -> httpx.AsyncClient:
    app = AgentDispatch(ROUTES, "/agent/v1", BEHIND)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://vulfix.test")


async def test_an_agent_route_gets_its_path_and_query(http: httpx.AsyncClient) -> None:
    answer = await http.post("/agent/v1/jobs/42/result?next=1")
    assert answer.status_code == 200 and answer.json() == {"job": "42", "next": "1"}


async def test_what_the_routes_do_not_take_is_answered_behind_them(
    http: httpx.AsyncClient,
) -> None:
    wrong_method = await http.get("/agent/v1/jobs/42/result")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert (await http.post("/agent/v1/jobs/42/other")).status_code == 404
    assert (await http.post("/agent/v1/jobs//result")).status_code == 404
    assert (await http.get("/healthz")).text == "elsewhere"


async def test_an_unexpected_failure_is_a_bare_500_with_the_traceback_in_the_log(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="vulfix.agent_api"):
        answer = await http.get("/agent/v1/broken")
    assert answer.status_code == 500 and answer.text == "Internal Server Error"
    assert "secret" not in answer.text
    (record,) = caplog.records
    assert record.exc_info is not None and "GET /agent/v1/broken" in record.getMessage()
