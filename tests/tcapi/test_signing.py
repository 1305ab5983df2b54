"""The spec's test vectors (computed with the official SDK's own signer)."""

import hmac

from hypothesis import given
from hypothesis import strategies as st

from vulfix.tcapi import signing

SECRET_ID = "AKIDEXAMPLEcwp0001"
SECRET_KEY = "cwpSecretKeyExample0001"
TIMESTAMP = "1700000000"
DATE = "2023-11-14"
HOST = "cwp.tencentcloudapi.com"


def _tc3(method: str, query: str, content_type: str, payload_hash: str) -> tuple[str, str]:
    canonical = signing.tc3_canonical_request(
        method, query, [("content-type", content_type), ("host", HOST)], payload_hash
    )
    string_to_sign = signing.tc3_string_to_sign(TIMESTAMP, DATE, "cwp", canonical)
    return canonical, signing.tc3_signature(SECRET_KEY, DATE, "cwp", string_to_sign)


def test_tc3_post_json_vector() -> None:
    payload_hash = signing.sha256_hex(b'{"FixId": 1}')
    assert payload_hash == "1f7bc896cac419e0c84b1d968f0965257ed343f1254d33acc24b343045388519"
    canonical, signature = _tc3("POST", "", "application/json", payload_hash)
    assert signing.sha256_hex(canonical.encode()) == (
        "83bcda157fd5560c7193f500392371566765f7b7f14c05a6c8ff1060c9ff54e0"
    )
    assert signature == "40d61080fce1f2cdfec04c7995fb4c9a5ba5f7d37f936354ec3d5dab7eb53105"


def test_tc3_get_vector_signs_the_raw_query() -> None:
    _, signature = _tc3("GET", "FixId=1", "application/x-www-form-urlencoded", signing.EMPTY_SHA256)
    assert signature == "632868ce076740ee5c1c26cfe756ff77d5e502308c51f5aa5249f294d7184e8f"


def test_tc3_unsigned_payload_vector() -> None:
    assert signing.UNSIGNED_PAYLOAD_SHA256.startswith("438d4109")
    _, signature = _tc3("POST", "", "application/json", signing.UNSIGNED_PAYLOAD_SHA256)
    assert signature == "f402997ee6fcb9da00212d180b9cf1363a2b417ab3663a6eb855c4d7de45459f"


V1_PARAMS = [
    ("Action", "DescribeVulFixStatus"),
    ("FixId", "1"),
    ("Nonce", "12345"),
    ("Region", "ap-guangzhou"),
    ("SecretId", SECRET_ID),
    ("Timestamp", TIMESTAMP),
    ("Version", "2018-02-28"),
]


def test_v1_hmac_sha256_vector() -> None:
    params = [*V1_PARAMS, ("SignatureMethod", "HmacSHA256")]
    string_to_sign = signing.v1_string_to_sign("GET", HOST, reversed(params))
    assert string_to_sign == (
        "GETcwp.tencentcloudapi.com/?Action=DescribeVulFixStatus&FixId=1&Nonce=12345"
        "&Region=ap-guangzhou&SecretId=AKIDEXAMPLEcwp0001&SignatureMethod=HmacSHA256"
        "&Timestamp=1700000000&Version=2018-02-28"
    )
    signature = signing.v1_signature(SECRET_KEY, string_to_sign, "HmacSHA256")
    assert signature == "aW2mBS7TaCe5gqKgQ//uCY+VAV5+w0P9aKsVr2fPSOA="


def test_v1_hmac_sha1_vector() -> None:
    params = [*V1_PARAMS, ("SignatureMethod", "HmacSHA1")]
    string_to_sign = signing.v1_string_to_sign("GET", HOST, params)
    assert (
        signing.v1_signature(SECRET_KEY, string_to_sign, "HmacSHA1")
        == "lZdL2Fgmau7u2DnZ0FaB330bA/Y="
    )


def test_v1_sorts_names_bytewise_and_keeps_values_raw() -> None:
    string_to_sign = signing.v1_string_to_sign(
        "POST", "h", [("Quuids.2", "b"), ("Quuids.10", "a b&c"), ("Signature", "x")]
    )
    assert string_to_sign == "POSTh/?Quuids.10=a b&c&Quuids.2=b"


def test_signing_key_is_cached_per_secret_date_and_service() -> None:
    signing.tc3_signing_key.cache_clear()
    first = signing.tc3_signing_key(SECRET_KEY, DATE, "cwp")
    again = signing.tc3_signing_key(SECRET_KEY, DATE, "cwp")
    other = signing.tc3_signing_key(SECRET_KEY, DATE, "127")
    assert first == again and first != other
    info = signing.tc3_signing_key.cache_info()
    assert (info.hits, info.misses) == (1, 2)


@given(key=st.binary(max_size=48), message=st.text(max_size=300))
def test_pre_keyed_signer_is_hmac_sha256_with_the_derived_key(key: bytes, message: str) -> None:
    secret = key.hex()
    derived = signing.tc3_signing_key(secret, DATE, "cwp")
    expected = hmac.digest(derived, message.encode(), "sha256").hex()
    assert signing.tc3_signer(secret, DATE, "cwp").sign_string(message) == expected


def test_signer_sign_is_the_string_to_sign_of_the_canonical_request() -> None:
    canonical = signing.tc3_canonical_request(
        "POST", "", [("content-type", "application/json"), ("host", HOST)], "ab" * 32
    )
    string_to_sign = signing.tc3_string_to_sign(TIMESTAMP, DATE, "cwp", canonical)
    assert signing.tc3_signer(SECRET_KEY, DATE, "cwp").sign(TIMESTAMP, canonical) == (
        signing.tc3_signature(SECRET_KEY, DATE, "cwp", string_to_sign)
    )
