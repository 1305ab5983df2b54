from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from vulfix.agent.config import ConfigError, load_config
from vulfix.cli.main import cli

EXAMPLE = Path(__file__).parents[2] / "deploy" / "agent.example.toml"


def test_the_shipped_example_loads_and_flags_override_it() -> None:
    config = load_config(EXAMPLE, {"state_dir": "/tmp/elsewhere", "dry_run": None})
    assert config.server.startswith("https://")
    assert config.snapshot.provider == "lvm" and config.snapshot.volume_group == "vg0"
    assert config.state_dir == "/tmp/elsewhere" and config.dry_run is False


def test_a_misspelt_key_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('server = "http://s"\n[snapshot]\nprovider = "lvm"\nvolume_grup = "vg0"\n')
    with pytest.raises(ConfigError, match="volume_grup"):
        load_config(path, {})


def test_a_wrong_type_and_a_missing_server_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('server = "http://s"\ncommand_timeout = "soon"\n')
    with pytest.raises(ConfigError, match="command_timeout"):
        load_config(path, {})
    with pytest.raises(ConfigError, match="--server"):
        load_config(None, {})


def test_the_command_says_what_is_wrong_without_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["agent", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no server: pass --server URL" in result.output
    broken = tmp_path / "broken.toml"
    broken.write_text("server = \n")
    result = CliRunner().invoke(cli, ["agent", "--config", str(broken)])
    assert result.exit_code == 1 and "broken.toml" in result.output
    assert "Traceback" not in result.output
