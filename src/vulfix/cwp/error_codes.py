"""Domain failures to CWP error codes: the one table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from vulfix.fixing import errors as domain
from vulfix.tcapi import ApiError, api_error

CODES: dict[type[domain.FixingError], str] = {
    domain.LookupIncomplete: "MissingParameter",
    domain.TaskNotFound: "InvalidParameterValue",
    domain.InvalidFixRequest: "InvalidParameterValue",
    domain.IncompleteFixItem: "InvalidParameter.MissingParameter",
    domain.MalformedBudget: "InvalidParameter.ParsingError",
    domain.CannotAutoFix: "UnsupportedOperation",
    domain.RecordNotFound: "ResourceNotFound",
    domain.RecordBusy: "ResourceInUse",
    domain.RecordNotRetryable: "InvalidParameterValue",
    domain.RecordBlocked: "ResourceUnavailable",
    domain.SnapshotQuotaExhausted: "ResourceInsufficient",
    domain.StorageUnavailable: "InternalError.MainDBFail",
    domain.ChangeFreeze: "UnsupportedOperation",
}


def to_api_error(error: domain.FixingError) -> ApiError:
    for kind in type(error).__mro__:
        code = CODES.get(kind)
        if code is not None:
            return api_error(code, str(error), error.message_zh)
    return api_error("InternalError")


@asynccontextmanager
async def api_errors() -> AsyncIterator[None]:
    """Re-raise domain failures as the API error the table names."""
    try:
        yield
    except domain.FixingError as error:
        raise to_api_error(error) from error
