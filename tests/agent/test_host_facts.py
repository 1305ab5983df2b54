from __future__ import annotations

from pathlib import Path

import pytest

from vulfix.agent.config import AgentConfig
from vulfix.agent.host_facts import enroll_request, os_family, outward_ip, read_os_release


def family_of(tmp_path: Path, text: str, **config: str) -> str:
    release = tmp_path / "os-release"
    release.write_text(text)
    return os_family(AgentConfig(server="http://s", os_release=str(release), **config))


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n', "ubuntu"),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "rocky"),
        ('ID="linuxmint"\nID_LIKE="ubuntu debian"\n', "ubuntu"),
        ("ID=opensuse-leap\nID_LIKE='suse opensuse'\n", "suse"),
        ("ID=alpine\n", "alpine"),
        ("ID=gentoo\n", "gentoo"),
        ("", "linux"),
    ],
)
def test_the_family_comes_from_os_release(tmp_path: Path, text: str, family: str) -> None:
    assert family_of(tmp_path, text) == family


def test_a_configured_family_wins_and_a_missing_file_is_not_fatal(tmp_path: Path) -> None:
    assert family_of(tmp_path, "ID=debian\n", os_family="windows") == "windows"
    assert read_os_release(tmp_path / "absent") == {}


def test_enrolment_reports_the_address_the_server_is_reached_from() -> None:
    assert outward_ip("http://127.0.0.1:8080") == "127.0.0.1"
    request = enroll_request(
        AgentConfig(server="http://127.0.0.1:9", enroll_token="vfe_t", host_name="web-1"),
        quuid=None,
        family="debian",
        snapshot_supported=False,
    )
    assert (request.host_name, request.host_ip, request.os_family) == (
        "web-1",
        "127.0.0.1",
        "debian",
    )
    assert request.snapshot_supported is False and request.quuid is None
