from typing import Annotated

import msgspec
import pytest

from vulfix.tcapi.errors import ApiError
from vulfix.tcapi.schema import decode_params

UInt = Annotated[int, msgspec.Meta(ge=0)]  # the validator caps it at 2**64 - 1


class Entry(msgspec.Struct, kw_only=True, rename="pascal"):
    quuids: list[str]
    vul_id: UInt | None = None


class Request(msgspec.Struct, kw_only=True, rename="pascal"):
    entries: list[Entry]
    save_days: Annotated[int, msgspec.Meta(ge=0, le=365)]
    name: Annotated[str, msgspec.Meta(max_length=8)] | None = None
    flag: bool | None = None


def code_of(params: dict[str, object]) -> str:
    with pytest.raises(ApiError) as caught:
        decode_params(params, Request)
    return caught.value.error_code


def test_a_valid_request_becomes_the_typed_struct() -> None:
    request = decode_params(
        {"Entries": [{"Quuids": ["a"], "VulId": 3}], "SaveDays": 7, "Name": "x"}, Request
    )
    assert request == Request(entries=[Entry(quuids=["a"], vul_id=3)], save_days=7, name="x")


def test_integers_accept_digit_strings_and_integral_floats() -> None:
    request = decode_params(
        {"Entries": [{"Quuids": ["a"], "VulId": "12"}], "SaveDays": 1.0}, Request
    )
    assert request.entries[0].vul_id == 12 and request.save_days == 1


def test_booleans_accept_both_sdk_spellings() -> None:
    assert decode_params(
        {"Entries": [{"Quuids": ["a"]}], "SaveDays": 0, "Flag": "True"}, Request
    ).flag
    assert not decode_params(
        {"Entries": [{"Quuids": ["a"]}], "SaveDays": 0, "Flag": "false"}, Request
    ).flag


def test_nulls_count_as_absent() -> None:
    assert (
        decode_params({"Entries": [{"Quuids": ["a"]}], "SaveDays": 0, "Name": None}, Request).name
        is None
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Entries": [{"Quuids": ["a"]}], "SaveDays": 1, "Extra": 1}, "UnknownParameter"),
        ({"Entries": [{"Quuids": ["a"], "Nope": 1}], "SaveDays": 1}, "UnknownParameter"),
        ({"SaveDays": 1}, "MissingParameter"),
        ({"Entries": [], "SaveDays": 1}, "MissingParameter"),
        ({"Entries": [{"Quuids": ["a"]}]}, "MissingParameter"),
        ({"Entries": [{}], "SaveDays": 1}, "MissingParameter"),
        ({"Entries": [{"Quuids": ["a"]}], "SaveDays": "abc"}, "InvalidParameter"),
        ({"Entries": [{"Quuids": ["a"]}], "SaveDays": True}, "InvalidParameter"),
        ({"Entries": [{"Quuids": ["a"]}], "SaveDays": 1.5}, "InvalidParameter"),
        ({"Entries": [{"Quuids": ["a"]}], "SaveDays": "-1"}, "InvalidParameter"),
        ({"Entries": {"Quuids": ["a"]}, "SaveDays": 1}, "InvalidParameter"),
        ({"Entries": [{"Quuids": [1]}], "SaveDays": 1}, "InvalidParameter"),
        ({"Entries": [{"Quuids": ["a"]}], "SaveDays": 1, "Name": 5}, "InvalidParameter"),
        ({"Entries": [{"Quuids": ["a"]}], "SaveDays": -1}, "InvalidParameterValue"),
        ({"Entries": [{"Quuids": ["a"]}], "SaveDays": 366}, "InvalidParameterValue"),
        ({"Entries": [{"Quuids": ["a"], "VulId": 2**64}], "SaveDays": 1}, "InvalidParameterValue"),
        (
            {"Entries": [{"Quuids": ["a"]}], "SaveDays": 1, "Name": "123456789"},
            "InvalidParameterValue",
        ),
    ],
)
def test_each_fault_gets_its_documented_code(params: dict[str, object], code: str) -> None:
    assert code_of(params) == code


def test_unknown_beats_missing_and_missing_beats_type() -> None:
    assert code_of({"Extra": 1, "SaveDays": "x"}) == "UnknownParameter"
    assert code_of({"SaveDays": "x"}) == "MissingParameter"


def test_messages_name_the_offending_path() -> None:
    with pytest.raises(ApiError) as caught:
        decode_params({"Entries": [{"Quuids": ["a"]}, {"Quuids": [3]}], "SaveDays": 1}, Request)
    assert "Entries.1.Quuids.0" in caught.value.message_en
