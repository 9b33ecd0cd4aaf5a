"""The one denial type. Checks raise it; `server.py` renders it to HTTP in exactly one place.

Modelled on Envoy's `Status` enum and Oathkeeper's error constructors: a stable machine reason
code for logs and metrics, a public title that is safe to show, and a detail that only goes to the
log. Nothing here knows about aiohttp.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from http import HTTPStatus

# RFC 9110's names where Python 3.11's `HTTPStatus` phrases are the older ones (3.13 has these): a client
# sees the same problem title whatever Python runs Bastion
_TITLES = {413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable", 422: "Unprocessable Content"}


class Reason(StrEnum):
    BAD_REQUEST = "bad_request"
    BAD_PATH = "bad_path"
    BAD_FRAMING = "bad_framing"
    HEADER_TIMEOUT = "header_timeout"
    BODY_TIMEOUT = "body_timeout"
    BAD_BODY = "bad_body"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    SCHEMA_INVALID = "schema_invalid"
    INJECTION_SUSPECTED = "injection_suspected"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    URI_TOO_LONG = "uri_too_long"
    HEADERS_TOO_LARGE = "headers_too_large"
    BODY_TOO_LARGE = "body_too_large"
    NO_RULE = "no_rule"
    AMBIGUOUS_RULE = "ambiguous_rule"
    AUTH_REQUIRED = "auth_required"
    FORBIDDEN = "forbidden"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    INTERNAL = "internal_error"
    # authentication (401 unless the rule allows anonymous access); modelled on Envoy's jwt_authn Status
    JWT_MISSING = "jwt_missing"
    JWT_MALFORMED = "jwt_malformed"
    JWT_TOO_LARGE = "jwt_too_large"
    JWT_MULTIPLE = "jwt_multiple"
    JWT_WRONG_SCHEME = "jwt_wrong_scheme"
    JWT_DUPLICATE_KEYS = "jwt_duplicate_keys"
    ALG_NONE = "alg_none"
    ALG_NOT_ALLOWED = "alg_not_allowed"
    FORBIDDEN_HEADER = "forbidden_header"
    UNKNOWN_CRIT = "unknown_crit"
    BAD_KID = "bad_kid"
    KID_UNKNOWN = "kid_unknown"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUED_IN_FUTURE = "issued_in_future"
    UNKNOWN_ISSUER = "unknown_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_TYP = "wrong_typ"
    MISSING_CLAIM = "missing_claim"
    BAD_CLAIMS = "bad_claims"
    REVOKED = "revoked"
    JWKS_UNAVAILABLE = "jwks_unavailable"
    CSRF = "csrf_origin_mismatch"
    SHUTTING_DOWN = "shutting_down"
    # response hardening
    CORS_REFUSED = "cors_refused"  # a preflight from an origin, or for a method or header, the policy refuses
    UPSTREAM_ERROR = "upstream_error"  # an upstream 5xx whose body `mask_upstream_errors` replaced
    # rate limits and login brute-force protection
    RATE_LIMITED = "rate_limited"
    LOGIN_LOCKED = "login_locked"
    STORE_UNAVAILABLE = "store_unavailable"  # the shared store is down and `store.on_failure` is fail_closed


# The reasons that are authentication failures: a missing, malformed, unverifiable or revoked
# credential (`forbidden` is authorisation). One set for the security events and the metrics.
AUTHENTICATION_REASONS = frozenset(
    {
        Reason.AUTH_REQUIRED, Reason.JWT_MISSING, Reason.JWT_MALFORMED, Reason.JWT_TOO_LARGE, Reason.JWT_MULTIPLE,
        Reason.JWT_WRONG_SCHEME, Reason.JWT_DUPLICATE_KEYS, Reason.ALG_NONE, Reason.ALG_NOT_ALLOWED,
        Reason.FORBIDDEN_HEADER, Reason.UNKNOWN_CRIT, Reason.BAD_KID, Reason.KID_UNKNOWN, Reason.BAD_SIGNATURE,
        Reason.EXPIRED, Reason.NOT_YET_VALID, Reason.ISSUED_IN_FUTURE, Reason.UNKNOWN_ISSUER, Reason.WRONG_AUDIENCE,
        Reason.WRONG_TYP, Reason.MISSING_CLAIM, Reason.BAD_CLAIMS, Reason.REVOKED, Reason.JWKS_UNAVAILABLE,
        Reason.CSRF,
    }
)  # fmt: skip

# Stable problem `type` URIs: relative references, which RFC 9457 §3.1.1 allows; they name the
# kind of problem without pointing anywhere that could leak deployment details.
PROBLEM_BASE = "https://bastion.dev/problems/"


class Denial(Exception):
    """A request Bastion refuses to pass on.

    >>> Denial(413, Reason.BODY_TOO_LARGE, detail="content-length 5000000 > 1048576")
    The client sees status 413, title "Content Too Large" and the request id; `detail` is logged only.
    """

    __slots__ = ("status", "reason", "title", "detail", "headers", "public", "extra")

    def __init__(
        self,
        status: int,
        reason: Reason,
        *,
        title: str | None = None,
        detail: str = "",
        headers: Mapping[str, str] | None = None,
        public: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(reason.value)
        self.status = status
        self.reason = reason
        self.title = title or _TITLES.get(status) or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = dict(headers) if headers else {}
        # the problem type the client sees; coarser than `reason` where the reason would help an
        # attacker (every token failure is "invalid-token")
        self.public = public
        # RFC 9457 §3.2 extension members, safe to show (e.g. failing field paths, violated policies)
        self.extra = dict(extra) if extra else None

    @property
    def type_uri(self) -> str:
        if self.public is not None and "://" in self.public:  # a registered type, e.g. IANA http-problem-types
            return self.public
        return PROBLEM_BASE + (self.public or self.reason.value.replace("_", "-"))

    def problem(self, request_id: str) -> dict[str, object]:
        """The RFC 9457 body. Never includes `detail`: that is for the log."""
        doc: dict[str, object] = {"type": self.type_uri, "title": self.title, "status": self.status}
        if self.extra:
            doc.update(self.extra)
        doc["request_id"] = request_id
        return doc


class Reply(Exception):
    """A request Bastion answers itself with no body that is not a refusal: a CORS preflight.

    Raised by a check like a Denial and rendered next to it in `server.py`, so the response hooks
    (security headers, CORS origin fields) still run on it. Not a Denial: it is logged and counted
    as an answer, not a deny.

    >>> Reply(204, {"Access-Control-Allow-Methods": "GET, POST", "Access-Control-Max-Age": "600"})
    """

    __slots__ = ("status", "headers")

    def __init__(self, status: int, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.headers = dict(headers) if headers else {}
