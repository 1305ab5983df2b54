import asyncio
import io
import json
import uuid

from vulfix.tcapi.asgi import _root_cause
from vulfix.tcapi.envelope import new_request_id
from vulfix.tcapi.observability import RequestLog


def test_request_ids_are_lower_case_uuid4() -> None:
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for request_id in ids:
        parsed = uuid.UUID(request_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == request_id


async def test_request_lines_of_one_tick_are_written_together_as_json() -> None:
    stream = io.StringIO()
    log = RequestLog(stream)
    log.emit({"request_id": "a", "code": "Success"})
    log.emit({"request_id": "b", "code": "InternalError"})
    assert stream.getvalue() == ""  # not before the loop turns
    await asyncio.sleep(0)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == ["a", "b"]
    assert all(line["time"].endswith("Z") for line in lines)


def test_without_a_running_loop_a_line_is_written_at_once() -> None:
    stream = io.StringIO()
    RequestLog(stream).emit({"request_id": "x"})
    assert json.loads(stream.getvalue())["request_id"] == "x"


def test_disabled_log_writes_nothing() -> None:
    stream = io.StringIO()
    RequestLog(stream, enabled=False).emit({"request_id": "x"})
    assert stream.getvalue() == ""


def test_an_internal_errors_cause_is_logged_as_the_first_failure_on_one_line() -> None:
    driver = ConnectionError('relation "hosts" is locked\nDETAIL: held by process 42')
    try:
        try:
            raise driver
        except ConnectionError as exc:
            raise RuntimeError("The database failed.") from exc
    except RuntimeError as wrapped:
        assert _root_cause(wrapped) == 'ConnectionError: relation "hosts" is locked'
