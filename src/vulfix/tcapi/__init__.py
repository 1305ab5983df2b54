"""`vulfix.tcapi`: the TencentCloud API 3.0 wire protocol, independent of any product.

Signatures (TC3-HMAC-SHA256, v1), request parsing, flattened parameters, the response
envelope, common error codes, rate limiting and the ASGI entry that dispatches to the actions
a product registers on an :class:`ApiService`.
"""

from vulfix.tcapi.asgi import TcApiApp, WireConfig
from vulfix.tcapi.authentication import Authenticator, ReplayCache
from vulfix.tcapi.credentials import Caller, Credential, CredentialSource
from vulfix.tcapi.errors import ApiError, api_error
from vulfix.tcapi.invocation import invoke, invoke_json
from vulfix.tcapi.rate_limiting import MemoryRateLimiter, RateLimiter, RatePolicy
from vulfix.tcapi.registry import ApiService

__all__ = [
    "ApiError",
    "ApiService",
    "Authenticator",
    "Caller",
    "Credential",
    "CredentialSource",
    "MemoryRateLimiter",
    "RateLimiter",
    "RatePolicy",
    "ReplayCache",
    "TcApiApp",
    "WireConfig",
    "api_error",
    "invoke",
    "invoke_json",
]
