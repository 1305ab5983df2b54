"""Scalar types shared by the CWP wire schemas."""

from typing import Annotated

import msgspec

# Every CWP "Integer" is uint64 in the SDK metadata.
UInt = Annotated[int, msgspec.Meta(ge=0)]  # the validator caps it at 2**64 - 1
# An id the store looks up is a signed 64-bit column: beyond that it names nothing, and the
# database drivers refuse to bind it (SQLite raises OverflowError), so it is out of range here.
StoredId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
# Ids we hand out stay below 2**53 so Node's JSON parser keeps them exact.
Quuid = Annotated[str, msgspec.Meta(max_length=128)]


class WireStruct(msgspec.Struct, kw_only=True, rename="pascal"):
    """Base for CWP request and response structs: snake_case in Python, PascalCase on the wire."""
