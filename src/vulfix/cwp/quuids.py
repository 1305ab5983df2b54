"""Host identifiers as the API accepts them: an empty one is missing, a malformed one is
refused before any lookup (with the code each action documents)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from vulfix.tcapi import ApiError, api_error

_QUUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def check_quuids(
    quuids: Iterable[str], path: str, *, format_code: str = "InvalidParameter.InvalidFormat"
) -> None:
    for index, quuid in enumerate(quuids):
        _check(quuid, f"{path}.{index}", format_code)


def check_quuid(
    quuid: str | None, path: str, *, format_code: str = "InvalidParameter.InvalidFormat"
) -> None:
    if quuid is not None:
        _check(quuid, path, format_code)


def _check(quuid: str, path: str, format_code: str) -> None:
    if quuid == "":
        raise api_error(
            "InvalidParameter.MissingParameter", f"`{path}` is empty.", f"`{path}` 为空。"
        )
    if not _QUUID.fullmatch(quuid):
        raise _malformed(path, quuid, format_code)


def _malformed(path: str, quuid: str, code: str) -> ApiError:
    shown = quuid[:40] + ("..." if len(quuid) > 40 else "")
    return api_error(
        code,
        f"`{path}` is not a host Quuid: {shown!r}.",
        f"`{path}` 不是合法的主机 Quuid：{shown!r}。",
    )
