import pytest

from vulfix.tcapi.errors import ApiError
from vulfix.tcapi.flattening import unflatten


def test_nested_lists_and_objects_are_rebuilt_from_dotted_names() -> None:
    pairs = [
        ("CreateVulFixTaskQuuids.0.Quuids.0", "q-1"),
        ("CreateVulFixTaskQuuids.0.Quuids.1", "q 2"),
        ("CreateVulFixTaskQuuids.0.VulId", "12"),
        ("CreateVulFixTaskQuuids.1.KbId", "7"),
        ("SaveDays", "7"),
    ]
    assert unflatten(pairs) == {
        "CreateVulFixTaskQuuids": [{"Quuids": ["q-1", "q 2"], "VulId": "12"}, {"KbId": "7"}],
        "SaveDays": "7",
    }


def test_indices_sort_numerically_not_bytewise() -> None:
    pairs = [(f"Quuids.{i}", f"h{i}") for i in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9)]
    assert unflatten(pairs) == {"Quuids": [f"h{i}" for i in range(11)]}


def test_sparse_indices_are_compacted() -> None:
    assert unflatten([("VulIds.3", "b"), ("VulIds.0", "a")]) == {"VulIds": ["a", "b"]}


@pytest.mark.parametrize(
    "pairs",
    [
        [("A", "1"), ("A.0", "2")],
        [("A.0", "2"), ("A", "1")],
        [("A", "1"), ("A", "2")],
        [("A.0", "1"), ("A.x", "2")],
        [("A..B", "1")],
        [(".A", "1")],
    ],
)
def test_conflicting_or_malformed_names_are_invalid_parameter(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(ApiError) as caught:
        unflatten(pairs)
    assert caught.value.error_code == "InvalidParameter"
