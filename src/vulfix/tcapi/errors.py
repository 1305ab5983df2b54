"""API errors: a vendor code plus a message in each supported language.

Every failure a client can see is an :class:`ApiError`. Layers above `tcapi` raise it (or a
subclass carrying a fixed code); the ASGI entry serialises it once, in the caller's language.
"""

from __future__ import annotations

from typing import ClassVar

ZH_CN = "zh-CN"
EN_US = "en-US"
LANGUAGES = (ZH_CN, EN_US)

# Default messages for the common codes of TencentCloud API 3.0, as (zh-CN, en-US).
COMMON_MESSAGES: dict[str, tuple[str, str]] = {
    "ActionOffline": ("接口已下线。", "The action has been retired."),
    "AuthFailure.InvalidAuthorization": (
        "请求头部的 Authorization 不符合腾讯云标准。",
        "The Authorization header is malformed.",
    ),
    "AuthFailure.InvalidSecretId": (
        "密钥非法（不是云 API 密钥类型）。",
        "The key is not an API key.",
    ),
    "AuthFailure.MFAFailure": ("MFA 错误。", "MFA check failed."),
    "AuthFailure.SecretIdNotFound": (
        "密钥不存在，或已被禁用、删除。",
        "The SecretId does not exist, or the key is disabled or deleted.",
    ),
    "AuthFailure.SignatureExpire": (
        "签名过期。Timestamp 与服务器时间相差不得超过五分钟。",
        "The signature has expired: the timestamp must be within 5 minutes of server time.",
    ),
    "AuthFailure.SignatureFailure": ("签名错误。", "The signature does not match."),
    "AuthFailure.TokenFailure": ("token 错误。", "The temporary-credential token is invalid."),
    "AuthFailure.UnauthorizedOperation": ("请求未授权。", "The request is not authorized."),
    "DryRunOperation": ("DryRun 操作，代表请求将会是成功的。", "The dry run would have succeeded."),
    "FailedOperation": ("操作失败。", "The operation failed."),
    "InternalError": ("内部错误。", "An internal error occurred."),
    "InternalError.MainDBFail": ("操作数据失败。", "Failed to manipulate the data."),
    "InvalidAction": ("接口不存在。", "The action does not exist."),
    "InvalidParameter": ("参数错误。", "A parameter is invalid."),
    "InvalidParameterValue": ("参数取值错误。", "A parameter value is invalid."),
    "InvalidRequest": ("请求 body 的 multipart 格式错误。", "The multipart body is malformed."),
    "LimitExceeded": ("超过配额限制。", "A quota was exceeded."),
    "MissingParameter": ("缺少参数错误。", "A required parameter is missing."),
    "NoSuchProduct": ("产品不存在。", "The product does not exist."),
    "NoSuchVersion": ("接口版本不存在。", "The API version does not exist."),
    "RequestLimitExceeded": ("请求的次数超过了频率限制。", "The request rate limit was exceeded."),
    "RequestSizeLimitExceeded": ("请求包超过限制大小。", "The request is too large."),
    "ResourceInUse": ("资源被占用。", "The resource is in use."),
    "ResourceInsufficient": ("资源不足。", "The resource is insufficient."),
    "ResourceNotFound": ("资源不存在。", "The resource does not exist."),
    "ResourceUnavailable": ("资源不可用。", "The resource is unavailable."),
    "ServiceUnavailable": ("当前服务暂时不可用。", "The service is temporarily unavailable."),
    "UnauthorizedOperation": ("未授权操作。", "The operation is not authorized."),
    "UnknownParameter": ("未知参数错误。", "An unknown parameter was passed."),
    "UnsupportedOperation": ("操作不支持。", "The operation is not supported."),
    "UnsupportedProtocol": (
        "HTTP(S) 请求协议错误，只支持 GET 和 POST 请求。",
        "Unsupported HTTP method: only GET and POST are accepted.",
    ),
    "UnsupportedRegion": ("接口不支持所传地域。", "The region is not supported."),
}


class ApiError(Exception):
    """An answer with ``Response.Error``: a vendor code and a message in both languages.

    Subclasses may fix the code as a class attribute, so raising sites only say what went
    wrong: ``class FixTaskNotFound(ApiError): code = "InvalidParameterValue"``.
    """

    code: ClassVar[str] = "InternalError"

    def __init__(self, en: str | None = None, zh: str | None = None, *, code: str | None = None):
        self.error_code = code or type(self).code
        default_zh, default_en = COMMON_MESSAGES.get(
            self.error_code, COMMON_MESSAGES.get(self.error_code.split(".")[0], ("", ""))
        )
        self.message_en = en or default_en
        self.message_zh = zh or en or default_zh
        super().__init__(f"{self.error_code}: {self.message_en}")

    def message(self, language: str) -> str:
        return self.message_en if language == EN_US else self.message_zh


def api_error(code: str, en: str | None = None, zh: str | None = None) -> ApiError:
    """An :class:`ApiError` with an explicit code (for codes no subclass names)."""
    return ApiError(en, zh, code=code)


def normalize_language(value: str | None, default: str = ZH_CN) -> str:
    """The response language for a request; unknown values fall back to the default."""
    if value in LANGUAGES:
        return value
    return default
