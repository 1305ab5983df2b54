"""The console in a real headless Chromium (Debian's, driven by playwright) against a real
`vulfix serve` with simulated agents: sign in with the keyboard, create a task through the fix
flow, watch it reach 100 % without reloading, retry a failed host until it recovers, and see
a read-only key get no action buttons and a forged form get refused.

Screenshots of every page land in `test-artifacts/console-screenshots/` (or
`$VULFIX_SCREENSHOTS`); `docs/screenshots/` holds the ones the README shows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.e2e.fleets import fleet_at_work, host, write_fleet
from tests.e2e.processes import ApiKey, ServerProcess
from tests.e2e.sdk_clients import common_client
from tests.services import chromium_path

ROOT = Path(__file__).parents[2]
SCREENSHOTS = Path(
    os.environ.get("VULFIX_SCREENSHOTS", ROOT / "test-artifacts" / "console-screenshots")
)
HOSTS = [f"web-{n:02d}" for n in range(8)]
# As the machine notes say: without these, Chromium keeps reaching for Google's hosts.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Deployment:
    server: ServerProcess
    key: ApiKey
    reader: ApiKey
    base: str

    def status(self, fix_id: int) -> dict[str, Any]:
        answer: dict[str, Any] = common_client(self.server.endpoint, self.key).call_json(
            "DescribeVulFixStatus", {"FixId": fix_id}
        )["Response"]
        return answer


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    directory = tmp_path_factory.mktemp("console-browser")
    env = {"VULFIX_ENGINE_INTERVAL": "0.2", "VULFIX_CONSOLE_SIGN_IN_RATE": "0",
           "VULFIX_DISPLAY_TIMEZONE": "Europe/Paris"}  # fmt: skip
    server = ServerProcess(directory, ("--rate-limit", "0"), env=env).start()
    key, reader = server.create_key("acme"), server.create_key("acme", read_only=True)
    fleet = write_fleet(directory / "fleet.json", [host(q, n) for n, q in enumerate(HOSTS)],
                        {501: HOSTS, 502: HOSTS[:3]})  # fmt: skip
    # Half the fixes and a quarter of the snapshots fail (seeded: every run sees the same).
    with fleet_at_work(server, key, fleet, directory / "agents.log",
                       "--fail-rate", "0.5", "--snapshot-fail-rate", "0.25", "--speed", "5",
                       "--seed", "4", hosts=len(HOSTS)):  # fmt: skip
        yield Deployment(server, key, reader, f"http://{server.endpoint}")
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def operator(browser: Browser, deployment: Deployment) -> Iterator[Page]:
    """One signed-in operator's tab, kept across the tests of the module, in order."""
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"the console's script failed: {errors}"


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def nav(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Console").get_by_role("link", name=name)


def sign_in_with_keyboard(page: Page, deployment: Deployment, key: ApiKey) -> None:
    page.goto(f"{deployment.base}/console")
    expect(page).to_have_url(re.compile(r"/console/sign-in"))
    page.keyboard.type(key.secret_id)  # the SecretId field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type(key.secret_key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/tasks$"))


def test_sign_in_and_create_a_task_through_the_fix_flow(
    operator: Page, deployment: Deployment
) -> None:
    operator.goto(f"{deployment.base}/console/sign-in")
    shot(operator, "sign-in")
    sign_in_with_keyboard(operator, deployment, deployment.key)
    expect(operator.get_by_text("No fix task yet")).to_be_visible()
    nav(operator, "Vulnerabilities").click()
    shot(operator, "vulnerabilities")
    operator.locator('tr[data-vul-id="501"]').get_by_role("link", name="Fix…").click()
    expect(operator.get_by_role("checkbox")).to_have_count(len(HOSTS))

    # Zero days takes no snapshot, and no host has one yet: the console says so first.
    operator.get_by_label("Keep snapshots for").fill("0")
    warning = operator.locator("#snapshot-warning")
    expect(warning).to_be_visible()
    expect(warning.locator("li")).to_have_count(len(HOSTS))
    shot(operator, "fix-flow-warning")
    operator.get_by_role("button", name="Create fix task").click()
    expect(operator).to_have_url(re.compile(r"/console/vulnerabilities/501$"))  # held back
    operator.get_by_label("Keep snapshots for").fill("1")
    expect(warning).to_be_hidden()
    operator.get_by_role("button", name="Create fix task").click()
    expect(operator).to_have_url(re.compile(r"/console/tasks/\d+\?notice=created$"))
    expect(operator.get_by_role("status")).to_have_text("The fix task was created.")
    expect(operator.locator('[data-figure="FixEndTime"]')).to_have_text("running")


def test_the_task_reaches_100_live_without_reloading(
    operator: Page, deployment: Deployment
) -> None:
    operator.evaluate("window.stillTheSamePage = true")
    fix_id = int(re.findall(r"/console/tasks/(\d+)", operator.url)[0])
    expect(operator.locator('[data-figure="FixEndTime"] time')).to_be_visible(timeout=60_000)
    assert operator.evaluate("window.stillTheSamePage") is True, "the page was reloaded"
    status = deployment.status(fix_id)
    assert status["FixProgress"] == 100
    for figure in ("HostCnt", "FixSuccessCnt", "FixFailCnt", "SnapshotFailCnt"):
        expect(operator.locator(f'[data-figure="{figure}"]')).to_have_text(str(status[figure]))
    assert status["FixFailCnt"] > 0, "the seeded fleet fails some fixes"
    shot(operator, "task-finished")


def test_a_failed_snapshot_is_retried_and_recovers(operator: Page, deployment: Deployment) -> None:
    fix_id = int(re.findall(r"/console/tasks/(\d+)", operator.url)[0])
    retry = operator.get_by_role("button", name=re.compile("Retry the snapshot"))
    assert retry.count() > 0, "the seeded fleet fails some snapshots"
    row = operator.locator("tr[data-quuid]", has=retry.first).first
    quuid = row.get_attribute("data-quuid")
    row = operator.locator(f'section[aria-labelledby="snapshots-heading"] tr[data-quuid="{quuid}"]')
    for _attempt in range(8):  # a quarter of snapshots fail: it succeeds within a few
        row.get_by_role("button", name=re.compile("Retry the snapshot")).click()
        expect(operator.get_by_role("status")).to_have_text("The snapshot will be taken again.")
        expect(row.locator(".badge")).to_have_text(re.compile("created|failed"), timeout=30_000)
        if row.locator(".badge").inner_text() == "created":
            break
    expect(row.locator(".badge")).to_have_text("created")
    snapshots = deployment.status(fix_id)["SnapshotList"]
    assert {s["Quuid"]: s["Status"] for s in snapshots}[quuid] == 1
    # Its fix follows the snapshot; wait for the task to settle before the next test.
    expect(operator.locator('[data-figure="FixEndTime"] time')).to_be_visible(timeout=60_000)


def test_a_failed_fix_is_retried_and_recovers(operator: Page, deployment: Deployment) -> None:
    fix_id = int(re.findall(r"/console/tasks/(\d+)", operator.url)[0])
    failed_row = operator.locator(
        "tr[data-vul-id]", has=operator.get_by_role("button", name="Retry the fix")
    ).first
    quuid = failed_row.get_attribute("data-quuid")
    row = operator.locator(f'tr[data-vul-id="501"][data-quuid="{quuid}"]')
    row.locator("summary").click()  # the output of the failed run
    expect(row.locator(".log-body")).to_contain_text("Exit code")
    shot(operator, "task-failed-host-output")
    for _attempt in range(8):  # each run fails half the time: it recovers within a few
        row.get_by_role("button", name="Retry the fix").click()
        expect(operator.get_by_role("status")).to_have_text("The fix will run again.")
        expect(row.locator(".badge")).to_have_text(re.compile("fixed|failed"), timeout=30_000)
        if row.locator(".badge").inner_text() == "fixed":
            break
    expect(row.locator(".badge")).to_have_text("fixed")
    records = deployment.status(fix_id)["VulFixList"][0]["HostList"]
    assert {r["Quuid"]: r["Status"] for r in records}[quuid] == 2


def test_hosts_show_their_agents_and_snapshots(operator: Page, deployment: Deployment) -> None:
    nav(operator, "Hosts").click()
    expect(operator.locator("tbody tr")).to_have_count(len(HOSTS))
    expect(operator.locator("tbody .badge-ok")).to_have_count(len(HOSTS))
    with_snapshot = {
        s["Quuid"] for s in deployment.status(1)["SnapshotList"] if s["Status"] == 1
    }  # the task is FixId 1: the first of a fresh server
    expect(operator.locator("tbody code", has_text="snap-")).to_have_count(len(with_snapshot))
    expect(operator.get_by_text("Times are shown in Europe/Paris.")).to_be_visible()
    shot(operator, "hosts")
    nav(operator, "Fix tasks").click()
    expect(operator.locator("tbody tr")).to_have_count(1)
    shot(operator, "tasks")


def test_a_forged_form_changes_nothing(operator: Page, deployment: Deployment) -> None:
    operator.goto(f"{deployment.base}/console/vulnerabilities/502")
    token = operator.locator('#fix-flow input[name="csrf_token"]')
    token.evaluate("input => input.value = 'forged'")
    operator.get_by_role("button", name="Create fix task").click()
    expect(operator.get_by_role("heading", name="That form was refused")).to_be_visible()
    shot(operator, "csrf-refused")
    operator.goto(f"{deployment.base}/console/tasks")
    expect(operator.locator("tbody tr")).to_have_count(1)


def test_a_read_only_key_sees_no_action_buttons(browser: Browser, deployment: Deployment) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    page = context.new_page()
    sign_in_with_keyboard(page, deployment, deployment.reader)
    expect(page.get_by_text("read-only")).to_be_visible()
    page.locator("tbody a").first.click()
    expect(page.locator("tr[data-vul-id]").first).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Retry|Cancel"))).to_have_count(0)
    shot(page, "task-read-only")
    page.goto(f"{deployment.base}/console/vulnerabilities/502")
    expect(page.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_role("button", name="Create fix task")).to_have_count(0)
    context.close()
