"""Parsing the TC3 Authorization header: the SDKs' exact form and the tolerant one agree."""

import pytest

from vulfix.tcapi.authentication import (
    InvalidAuthorization,
    Tc3Authorization,
    parse_tc3_authorization,
)

SIGNATURE = "0123456789abcdef" * 4
SDK_FORM = (
    "TC3-HMAC-SHA256 Credential=AKIDx/2026-12-05/cwp/tc3_request, "
    f"SignedHeaders=content-type;host, Signature={SIGNATURE}"
)
EXPECTED = Tc3Authorization("AKIDx", "2026-12-05", "cwp", ("content-type", "host"), SIGNATURE)


@pytest.mark.parametrize(
    "value",
    [
        SDK_FORM,
        SDK_FORM.replace(", ", ","),  # no spaces after the commas
        "  " + SDK_FORM.replace(", ", " ,  ") + " ",  # the tolerant parser's spacing
        SDK_FORM.replace("Credential=AKIDx/2026-12-05/cwp/tc3_request, ", "")
        + ", Credential=AKIDx/2026-12-05/cwp/tc3_request",  # another order
    ],
)
def test_every_accepted_form_parses_to_the_same_fields(value: str) -> None:
    assert parse_tc3_authorization(value) == EXPECTED


@pytest.mark.parametrize(
    "value",
    [
        SDK_FORM.replace(SIGNATURE, SIGNATURE.upper()),  # hex must be lower-case
        SDK_FORM.replace(SIGNATURE, SIGNATURE[:-1]),  # 63 digits
        SDK_FORM.replace(SIGNATURE, SIGNATURE[:-1] + "g"),
        SDK_FORM + "0",  # 65 digits
        SDK_FORM.replace("content-type;host", "host"),  # content-type must be signed
        SDK_FORM.replace("content-type;host", "content-type"),  # and host
        SDK_FORM.replace("2026-12-05", "2026-12-5"),
        SDK_FORM.replace("tc3_request", "tc4_request"),
        SDK_FORM.replace("TC3-HMAC-SHA256", "TC3-HMAC-SHA1"),
        SDK_FORM.replace("Signature=", "Signature"),
        "",
    ],
)
def test_malformed_headers_are_invalid_authorization(value: str) -> None:
    with pytest.raises(InvalidAuthorization):
        parse_tc3_authorization(value)


def test_a_signature_that_is_not_last_still_parses() -> None:
    reordered = (
        f"TC3-HMAC-SHA256 Signature={SIGNATURE}, Credential=AKIDx/2026-12-05/cwp/tc3_request, "
        "SignedHeaders=content-type;host"
    )
    assert parse_tc3_authorization(reordered) == EXPECTED
