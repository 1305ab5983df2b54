"""Signing in to the console over plain HTTP, as a browser would, for the HTTP-level tests."""

from __future__ import annotations

import re

import httpx

from tests.e2e.processes import ApiKey

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(page: str) -> str:
    found = _TOKEN.search(page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def console_client(endpoint: str) -> httpx.Client:
    return httpx.Client(base_url=f"http://{endpoint}", follow_redirects=False, timeout=10)


def sign_in(client: httpx.Client, key: ApiKey, next_page: str = "/console/tasks") -> httpx.Response:
    form = client.get("/console/sign-in")
    assert form.status_code == 200, form.text
    return client.post(
        "/console/sign-in",
        data={"csrf_token": csrf_token(form.text), "secret_id": key.secret_id,
              "secret_key": key.secret_key, "next": next_page},
    )  # fmt: skip
