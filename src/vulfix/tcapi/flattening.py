"""Flattened parameters (`Quuids.0`, `A.0.B`) rebuilt into a JSON-like tree.

GET queries, forms and v1 requests carry nested parameters as dotted names with 0-based list
indices. Index segments are sorted numerically and compacted, as the SDKs drop nulls and the
clients only ever send dense lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vulfix.tcapi.errors import ApiError

# Far deeper than any schema nests (`A.0.B.1` is four); the rebuild recurses per segment.
MAX_SEGMENTS = 32


class FlatteningError(ApiError):
    code = "InvalidParameter"


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Rebuild the parameter tree; conflicting or duplicate names are `InvalidParameter`."""
    root: dict[str, Any] = {}
    for name, value in pairs:
        segments = name.split(".", MAX_SEGMENTS)
        if len(segments) > MAX_SEGMENTS or any(segment == "" for segment in segments):
            raise FlatteningError(
                f"The parameter name `{name}` is malformed.", f"参数名 `{name}` 格式错误。"
            )
        node = root
        for depth, segment in enumerate(segments[:-1]):
            child = node.setdefault(segment, {})
            if not isinstance(child, dict):
                raise _conflict(".".join(segments[: depth + 1]))
            node = child
        leaf = segments[-1]
        if leaf in node:
            raise _conflict(name)
        node[leaf] = value
    return _listify(root)


def _conflict(name: str) -> FlatteningError:
    return FlatteningError(
        f"The parameter `{name}` is given more than once or both as a value and a container.",
        f"参数 `{name}` 重复或类型冲突。",
    )


def _listify(node: dict[str, Any]) -> dict[str, Any]:
    for key, value in node.items():
        if isinstance(value, dict):
            node[key] = _as_list_if_indexed(_listify(value), key)
    return node


def _as_list_if_indexed(node: dict[str, Any], name: str) -> Any:
    keys = list(node)
    if not keys or not any(key.isdigit() for key in keys):
        return node
    if not all(key.isascii() and key.isdigit() for key in keys):
        raise _conflict(name)
    return [node[key] for key in sorted(keys, key=int)]
