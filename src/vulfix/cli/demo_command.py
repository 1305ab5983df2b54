"""`vulfix demo`: the main job on the embedded default (SQLite, one process).

It prepares a state directory, an account and API key, serves the API, imports a demo fleet
whose hosts run as simulated agents, creates a fix task and shows it live, with
ready-to-paste tccli and Python SDK lines for calling the same API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from vulfix.cli.serve_command import configure_logging
from vulfix.demo.session import DemoOptions, run_demo
from vulfix.settings import default_data_dir, load_settings
from vulfix.store.api_keys import ApiKeyStore
from vulfix.store.database import create_engine
from vulfix.store.migrate import upgrade
from vulfix.store.secret_cipher import SecretCipher, load_master_key

DEMO_ACCOUNT = "demo"


def default_state_dir() -> Path:
    return default_data_dir() / "demo"


@click.command("demo")
@click.option("--port", type=int, default=8080, show_default=True, help="Port for the API.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the demo keeps its data.",
)
@click.option("--no-task", is_flag=True, help="Enrol the simulated fleet but create no fix task.")
@click.option("--no-tui", is_flag=True, help="Print progress lines instead of the live view.")
def demo_command(port: int, state_dir: Path | None, no_task: bool, no_tui: bool) -> None:
    """Run vulfix on SQLite with a simulated fleet of 48 hosts, fix it, and show it live."""
    state = state_dir or default_state_dir()
    state.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{state / 'vulfix.db'}"
    settings = load_settings(db=db, port=port)
    upgrade(db)
    key = asyncio.run(_demo_key(settings.db, state))
    endpoint = f"127.0.0.1:{port}"
    log_file = state / "server.log"
    configure_logging(settings.log_level, log_file)
    click.echo(
        f"vulfix demo: the CWP API on http://{endpoint} (SQLite at {state / 'vulfix.db'}, "
        f"server log {log_file})\n\n  SecretId  {key['SecretId']}\n  SecretKey {key['SecretKey']}\n"
        f"\nWatch it in the web console: http://{endpoint}/console (sign in with the key above)\n"
    )

    def hints(fix_id: int) -> str:
        return _call_lines(endpoint, key, fix_id)

    console = Console(highlight=False)
    options = DemoOptions(create_task=not no_task, live_view=not no_tui and sys.stdout.isatty())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(settings, hints, options, console))


def _call_lines(endpoint: str, key: dict[str, str], fix_id: int) -> str:
    return f"""tccli:
  tccli cwp DescribeVulFixStatus --FixId {fix_id} --region ap-guangzhou \\
    --secretId {key["SecretId"]} --secretKey {key["SecretKey"]} --endpoint http://{endpoint}

Python SDK (pip install tencentcloud-sdk-python-cwp):
  from tencentcloud.common import credential
  from tencentcloud.common.profile.client_profile import ClientProfile
  from tencentcloud.common.profile.http_profile import HttpProfile
  from tencentcloud.cwp.v20180228 import cwp_client, models
  profile = ClientProfile(httpProfile=HttpProfile(endpoint="{endpoint}", protocol="http"))
  cred = credential.Credential("{key["SecretId"]}", "{key["SecretKey"]}")
  client = cwp_client.CwpClient(cred, "ap-guangzhou", profile)
  request = models.DescribeVulFixStatusRequest(); request.FixId = {fix_id}
  print(client.DescribeVulFixStatus(request).to_json_string())"""


async def _demo_key(db: str, state: Path) -> dict[str, str]:
    """The demo's key, created once and kept (0600) so a restart prints the same lines."""
    key_file = state / "demo-key.json"
    if key_file.exists():
        saved: dict[str, str] = json.loads(key_file.read_text(encoding="utf-8"))
        return saved
    settings = load_settings(db=db)
    engine = create_engine(db)
    try:
        created = await ApiKeyStore(engine, SecretCipher(load_master_key(settings))).create_key(
            DEMO_ACCOUNT, read_only=False
        )
    finally:
        await engine.dispose()
    key = {"SecretId": created.secret_id, "SecretKey": created.secret_key}
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(key, handle)
    return key
