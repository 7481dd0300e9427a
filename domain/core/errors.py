"""Domain errors; the HTTP edge maps each class to one status and one problem+json shape.

DomainError                 500  something the domain refuses, with a code and a human message
├── BadRequest              400  the request cannot be read at all (malformed JSON or multipart, too deep)
├── InvalidInput            422  the request is well-formed but its values are wrong (field errors)
├── Unauthenticated         401  no, bad or expired credentials
├── Forbidden               403  authenticated, but this role may not do this
├── NotFound                404  missing, or hidden from this user (never a hint it exists)
├── Conflict                409  clashes with the current state (taken email, last lead, ...)
├── TimedOut                408  the work the request asked for ran past its time limit (a query)
├── Gone                    410  was there and is no more (an expired upload)
├── PreconditionFailed      412  a required protocol version or condition does not hold
├── TooLarge                413  over a configured size limit
├── UnsupportedMediaType    415  a body of a content type this route does not take
├── ChecksumMismatch        460  the body does not match the checksum sent with it (tus)
├── TooManyRequests         429  throttled; retry_after_s says when to come back
└── Unavailable             503  a backing service is down
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    status = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        # each entry: {"path": "$.field[0]", "message": "..."}
        self.errors = [dict(e) for e in errors] if errors else None
        # more members of the problem document (where in a statement an SQL error is)
        self.extra = dict(extra) if extra else None


def field_error(path: str, message: str) -> InvalidInput:
    """An InvalidInput about one field, with the field's path in the errors list."""
    return InvalidInput(f"{path.removeprefix('$.')}: {message}", errors=[{"path": path, "message": message}])


class BadRequest(DomainError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class InvalidInput(DomainError):
    status = 422
    code = "validation_error"
    title = "Invalid input"


class Unauthenticated(DomainError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class TimedOut(DomainError):
    status = 408
    code = "timed_out"
    title = "Timed out"


class Gone(DomainError):
    status = 410
    code = "gone"
    title = "Gone"


class PreconditionFailed(DomainError):
    status = 412
    code = "precondition_failed"
    title = "Precondition failed"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class ChecksumMismatch(DomainError):
    status = 460  # the tus checksum extension's own status
    code = "checksum_mismatch"
    title = "Checksum mismatch"


class TooLarge(DomainError):
    status = 413
    code = "too_large"
    title = "Payload too large"


class TooManyRequests(DomainError):
    status = 429
    code = "too_many_requests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after_s = retry_after_s


class Unavailable(DomainError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"
