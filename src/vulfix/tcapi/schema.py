"""Request validation against an action's declared msgspec Struct.

The Struct is the single declaration of an action's input: field names (PascalCase on the
wire through ``rename="pascal"``), types, required-ness and ranges (``msgspec.Meta``). This
module walks that declaration and produces the vendor's codes in the vendor's order:
`UnknownParameter`, `MissingParameter`, `InvalidParameter` (type), `InvalidParameterValue`
(range). Integers accept JSON integers, integral floats and ASCII digit strings, because the
original documentation sends ``"FixId": "1"`` and flattened requests carry only strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import msgspec
from msgspec import inspect as mi

from vulfix.tcapi.errors import ApiError

UINT64_MAX = 2**64 - 1
T = TypeVar("T", bound=msgspec.Struct)


class UnknownParameter(ApiError):
    code = "UnknownParameter"


class MissingParameter(ApiError):
    code = "MissingParameter"


class InvalidParameter(ApiError):
    code = "InvalidParameter"


class InvalidParameterValue(ApiError):
    code = "InvalidParameterValue"


@dataclass(frozen=True, slots=True)
class _Field:
    python_name: str
    wire_name: str
    type: mi.Type
    required: bool


@cache
def _fields(struct_type: type[msgspec.Struct]) -> tuple[_Field, ...]:
    info = mi.type_info(struct_type)
    assert isinstance(info, mi.StructType)
    fields = []
    for field in info.fields:
        field_type, optional = _strip_none(field.type)
        fields.append(
            _Field(field.name, field.encode_name, field_type, field.required and not optional)
        )
    return tuple(fields)


def _strip_none(field_type: mi.Type) -> tuple[mi.Type, bool]:
    if isinstance(field_type, mi.UnionType):
        rest = [t for t in field_type.types if not isinstance(t, mi.NoneType)]
        if len(rest) == 1:
            return rest[0], True
    return field_type, False


def decode_params(params: dict[str, Any], struct_type: type[T]) -> T:
    """Validate a decoded parameter tree and build the typed request."""
    return _decode_struct(params, struct_type, prefix="")


def _decode_struct(data: dict[str, Any], struct_type: type[T], prefix: str) -> T:
    fields = _fields(struct_type)
    known = {field.wire_name for field in fields}
    for name in data:
        if name not in known:
            raise UnknownParameter(
                f"The parameter `{prefix}{name}` is not recognized.",
                f"参数 `{prefix}{name}` 未定义。",
            )
    values: dict[str, Any] = {}
    for field in fields:
        value = data.get(field.wire_name)
        if value is None or (isinstance(value, list) and not value and field.required):
            if field.required:
                path = prefix + field.wire_name
                raise MissingParameter(
                    f"The parameter `{path}` is missing.", f"缺少参数 `{path}`。"
                )
            continue
        values[field.python_name] = _decode_value(value, field.type, prefix + field.wire_name)
    return struct_type(**values)


def _decode_value(value: Any, declared: mi.Type, path: str) -> Any:
    if isinstance(declared, mi.IntType):
        return _decode_int(value, declared, path)
    if isinstance(declared, mi.StrType):
        if not isinstance(value, str):
            raise _wrong_type(path, "String")
        _check_length(value, declared, path)
        return value
    if isinstance(declared, mi.BoolType):
        return _decode_bool(value, path)
    if isinstance(declared, mi.ListType):
        if not isinstance(value, list):
            raise _wrong_type(path, "Array")
        item_type = declared.item_type
        if _is_plain_str(item_type) and all(type(item) is str for item in value):
            return list(value)  # the common case (Quuids): no per-element walk
        return [
            _decode_value(item, declared.item_type, f"{path}.{index}")
            for index, item in enumerate(value)
        ]
    if isinstance(declared, mi.StructType):
        if not isinstance(value, dict):
            raise _wrong_type(path, "Object")
        return _decode_struct(value, declared.cls, prefix=f"{path}.")
    raise TypeError(f"unsupported schema type {declared!r} at {path}")


def _decode_int(value: Any, declared: mi.IntType, path: str) -> int:
    number: int
    low = declared.ge if declared.ge is not None else 0
    high = declared.le if declared.le is not None else UINT64_MAX
    if isinstance(value, bool):
        raise _wrong_type(path, "Integer")
    if isinstance(value, int):
        number = value
    elif _is_integral_float(value):
        number = int(value)
    elif _is_digit_string(value):
        # int() refuses over 4300 digits; past 20 the value is beyond uint64 anyway.
        digits = value.lstrip("0")
        number = int(digits or "0") if len(digits) <= 20 else max(high, UINT64_MAX) + 1
    else:
        raise _wrong_type(path, "Integer")
    if not low <= number <= high:
        raise InvalidParameterValue(
            f"The value of `{path}` must be between {low} and {high}.",
            f"参数 `{path}` 的取值必须在 {low} 到 {high} 之间。",
        )
    return number


def _is_plain_str(declared: mi.Type) -> bool:
    return (
        isinstance(declared, mi.StrType)
        and declared.max_length is None
        and declared.min_length is None
    )


def _is_integral_float(value: Any) -> bool:
    return isinstance(value, float) and value.is_integer()


def _is_digit_string(value: Any) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit()


def _decode_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _wrong_type(path, "Boolean")


def _check_length(value: str, declared: mi.StrType, path: str) -> None:
    if declared.max_length is not None and len(value) > declared.max_length:
        raise InvalidParameterValue(
            f"The value of `{path}` is longer than {declared.max_length} characters.",
            f"参数 `{path}` 的长度不能超过 {declared.max_length}。",
        )
    if declared.min_length is not None and len(value) < declared.min_length:
        raise InvalidParameterValue(
            f"The value of `{path}` is shorter than {declared.min_length} characters.",
            f"参数 `{path}` 的长度不能少于 {declared.min_length}。",
        )


def _wrong_type(path: str, expected: str) -> InvalidParameter:
    return InvalidParameter(
        f"The parameter `{path}` must be of type {expected}.",
        f"参数 `{path}` 的类型应为 {expected}。",
    )
