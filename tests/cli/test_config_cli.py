from __future__ import annotations

import json

from tests.cli.conftest import RunVulfix


def test_config_shows_the_redis_settings_without_the_password(vulfix: RunVulfix) -> None:
    env = {"VULFIX_REDIS": "redis://:hunter2@10.0.0.5:6379/2", "VULFIX_REDIS_FAIL_MODE": "closed"}
    result = vulfix("config", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["redis"] == "redis://:***@10.0.0.5:6379/2"
    assert (shown["redis_fail_mode"], shown["redis_prefix"]) == ("closed", "vulfix:")
    assert "hunter2" not in result.stdout


def test_an_unknown_redis_fail_mode_is_refused(vulfix: RunVulfix) -> None:
    result = vulfix("config", env={"VULFIX_REDIS_FAIL_MODE": "sometimes"})
    assert result.returncode == 2
    assert "redis_fail_mode" in result.stderr and "Traceback" not in result.stderr


def test_a_bad_setting_is_one_line_naming_where_to_fix_it(vulfix: RunVulfix) -> None:
    result = vulfix("serve", env={"VULFIX_PORT": "eighty"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Error: setting port (VULFIX_PORT, the configuration file or its flag): "
        "Expected `int`, got `str`"
    )
    result = vulfix("config", env={"VULFIX_RATE_LIMITS": "{not json"})
    assert result.returncode == 2 and "VULFIX_RATE_LIMITS is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr
