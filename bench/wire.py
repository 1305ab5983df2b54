"""Wire-path throughput as a ratio to the raw ASGI ceiling, measured in one run.

Three servers, one after another, each on uvicorn (httptools, uvloop, no access log) pinned
to CPU 0, loaded by `wrk` pinned to CPU 1 with the same pre-signed TC3 request (a signature
stays valid for 300 s):

- raw:  a plain ASGI callable answering the exact bytes the API answers (the ceiling);
- wire: `vulfix.tcapi` with a trivial registered action (signature, envelope, rate-limit
        check, schema, log line and metrics all included);
- floor: the least Python that can answer the same call: straight-line TC3 verification,
        envelope, log line and metrics, with no check for anything unusual and no fallback.
        No correct wire path can beat it; it shows how much of the gap is Python at all;
- full: `vulfix serve` itself answering DescribeVulFixStatus of a task from SQLite.

Usage: python bench/wire.py [--seconds 5] [--connections 32]
Needs `wrk` (Debian package `wrk`) and `taskset`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.signed_requests import Signer  # noqa: E402

SECRET_ID = "AKIDbench000000000000000000000000001"
SECRET_KEY = "benchSecretKey00000000000000000001"


def build_wire_app(rate_limiter: Any = None, limit: int = 0) -> Any:
    """The wire path; rate limiting is off unless `limit` (with `rate_limiter`, default memory)."""
    import msgspec

    from vulfix.tcapi import (
        ApiService,
        Authenticator,
        Caller,
        Credential,
        MemoryRateLimiter,
        RatePolicy,
        TcApiApp,
        WireConfig,
    )

    class Request(msgspec.Struct, kw_only=True, rename="pascal"):
        fix_id: int | None = None

    class Response(msgspec.Struct, kw_only=True, rename="pascal"):
        fix_id: int
        fix_progress: int

    class Keys:
        """One key, answered as the server's credential cache answers: the stored object."""

        credential = Credential(SECRET_ID, SECRET_KEY, 1, "bench", 1250000001, False)

        async def lookup(self, secret_id: str) -> Credential | None:
            return self.credential if secret_id == SECRET_ID else None

    async def handler(req: Request, _caller: Caller) -> Response:
        return Response(fix_id=req.fix_id or 0, fix_progress=100)

    service = ApiService("cwp", "2018-02-28")
    service.add("DescribeVulFixStatus", Request, handler, mutating=False)
    config = WireConfig(
        service, Authenticator(Keys()), rate_limiter or MemoryRateLimiter(), RatePolicy(limit)
    )

    async def not_found(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return TcApiApp(config, not_found)


def build_floor_app() -> Any:
    """The same answer as the wire path with every step it cannot skip and nothing else."""
    import hmac

    from vulfix.tcapi import envelope, observability, signing
    from vulfix.tcapi.authentication import parse_tc3_authorization
    from vulfix.tcapi.credentials import Caller
    from vulfix.tcapi.raw_request import json_params
    from vulfix.tcapi.schema import decode_params

    wire = build_wire_app()
    keys = wire.config.authenticator.credentials
    action = wire.config.service.actions["DescribeVulFixStatus"]
    request_type = action.request_type

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = envelope.new_request_id()
        body = (await receive())["body"]
        auth = parse_tc3_authorization(headers[b"authorization"].decode())
        timestamp = headers[b"x-tc-timestamp"].decode()
        if abs(time.time() - int(timestamp)) > 300:
            raise RuntimeError("expired")
        key = await keys.lookup(auth.secret_id)
        content_type, host = headers[b"content-type"].decode(), headers[b"host"].decode()
        payload_hash = hashlib.sha256(body).hexdigest()
        canonical = f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n"
        canonical += payload_hash
        signer = signing.tc3_signer(key.secret_key, auth.date, auth.service)
        if not hmac.compare_digest(signer.sign(timestamp, canonical), auth.signature):
            raise RuntimeError("bad signature")
        caller = Caller(1, key.account_name, key.app_id, key.secret_id, False, request_id, "", "")
        answer = await action.handler(decode_params(json_params(body), request_type), caller)
        out = envelope.encode_success(answer, request_id)
        response_headers = envelope.response_headers(out, request_id, None)
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": out})
        client = scope["client"]
        observability.record_request(
            request_id=request_id, action=action.name, account=key.account_name, code="Success",
            duration=time.perf_counter() - started, client=f"{client[0]}:{client[1]}",
        )  # fmt: skip

    return app


def build_raw_app(body: bytes) -> Any:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-tc-requestid", b"00000000-0000-4000-8000-000000000000"),
    ]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def serve(kind: str, port: int, body_file: str) -> None:

    import uvicorn

    from vulfix.cli.serve_command import configure_logging

    configure_logging("INFO")  # the request log line is part of the measured path
    builders = {"wire": build_wire_app, "floor": build_floor_app}
    app = builders[kind]() if kind in builders else build_raw_app(Path(body_file).read_bytes())
    uvicorn.run(
        app, host="127.0.0.1", port=port, access_log=False, log_level="warning", lifespan="off"
    )


def wrk_script(call_headers: dict[str, str], body: bytes, directory: Path) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in call_headers.items()]
    path = directory / "request.lua"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} not ready")


def load(port: int, script: Path, seconds: int, connections: int) -> float:
    base = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/",
    ]
    subprocess.run([*base[:5], "-d1s", *base[5:]], capture_output=True, check=True)  # warm-up
    out = subprocess.run(
        [*base[:5], f"-d{seconds}s", *base[5:]], capture_output=True, text=True, check=True
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    if non_2xx:
        raise RuntimeError(f"{non_2xx.group(1)} non-200 answers:\n{out.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not match:
        raise RuntimeError(out.stdout + out.stderr)
    return float(match.group(1))


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["taskset", "-c", "0", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def measure_full(directory: Path, seconds: int, connections: int) -> tuple[float, bytes]:
    """`vulfix serve` answering DescribeVulFixStatus of a (record-less) task from SQLite."""
    from datetime import UTC, datetime

    from vulfix.settings import load_settings
    from vulfix.store.api_keys import ApiKeyStore
    from vulfix.store.database import create_engine
    from vulfix.store.migrate import upgrade
    from vulfix.store.secret_cipher import SecretCipher, load_master_key
    from vulfix.store.tables import fix_tasks

    db = f"sqlite:///{directory / 'full.db'}"
    upgrade(db)
    settings = load_settings(db=db)

    async def setup() -> tuple[str, str, int]:
        engine = create_engine(db)
        store = ApiKeyStore(engine, SecretCipher(load_master_key(settings)))
        key = await store.create_key("bench", read_only=False)
        async with engine.begin() as conn:
            account_id = await _account_id(conn, key.account)
            created_at = datetime.now(UTC).replace(tzinfo=None)
            result = await conn.execute(
                fix_tasks.insert().values(account_id=account_id, created_at=created_at)
            )
            fix_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        await engine.dispose()
        return key.secret_id, key.secret_key, fix_id

    secret_id, secret_key, fix_id = asyncio.run(setup())
    port = 18400
    vulfix = str(Path(sys.executable).parent / "vulfix")
    serve_args = [vulfix, "serve", "--port", str(port), "--db", db, "--rate-limit", "0"]
    server = start(serve_args, {"VULFIX_LOG_LEVEL": "WARNING"})
    try:
        wait_ready(port)
        call = Signer(secret_id, secret_key, host=f"127.0.0.1:{port}").tc3_post(
            f'{{"FixId": {fix_id}}}'.encode()
        )
        answer = httpx.post(f"http://127.0.0.1:{port}/", headers=call.headers, content=call.body)
        assert "Error" not in answer.json()["Response"], answer.text
        return load(
            port, wrk_script(call.headers, call.body, directory), seconds, connections
        ), answer.content
    finally:
        server.terminate()
        server.wait()


async def _account_id(conn: Any, name: str) -> int:
    from sqlalchemy import select

    from vulfix.store.tables import accounts

    return int(
        (await conn.execute(select(accounts.c.id).where(accounts.c.name == name))).scalar_one()
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--serve", nargs=3, metavar=("KIND", "PORT", "BODY_FILE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/wire.py needs `{tool}` (Debian: apt-get install {tool})")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        results: dict[str, float] = {}
        port = 18300
        call = Signer(SECRET_ID, SECRET_KEY, host=f"127.0.0.1:{port}").tc3_post(b'{"FixId": 1}')
        script = wrk_script(call.headers, call.body, directory)
        body_file = directory / "body.json"
        body_file.write_bytes(b"{}")
        for kind in ("wire", "raw", "floor"):
            server = start([sys.executable, __file__, "--serve", kind, str(port), str(body_file)])
            try:
                wait_ready(port)
                if kind == "wire":
                    answer = httpx.post(
                        f"http://127.0.0.1:{port}/", headers=call.headers, content=call.body
                    )
                    assert "Error" not in answer.json()["Response"], answer.text
                    body_file.write_bytes(answer.content)  # the raw app answers these very bytes
                results[kind] = load(port, script, args.seconds, args.connections)
            finally:
                server.terminate()
                server.wait()
        results["full"], _ = measure_full(directory, args.seconds, args.connections)
    raw = results["raw"]
    print(f"raw ASGI ceiling           {raw:>9.0f} req/s")
    for label, kind in (
        ("floor (least Python)", "floor"),
        ("tcapi wire path", "wire"),
        ("vulfix serve (SQLite task)", "full"),
    ):
        print(f"{label:<26} {results[kind]:>9.0f} req/s   ratio {results[kind] / raw:.2f}")


if __name__ == "__main__":
    main()
