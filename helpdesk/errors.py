"""Domain errors: values with a stable ``code`` that the HTTP edge maps to JSON once."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An error a caller can act on; ``status`` is the HTTP status it maps to."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries (Retry-After, say)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.details)
        return body


class InvalidInput(DomainError):
    """The request is well-formed but its content cannot be accepted (HTTP 422)."""

    code = "invalid_input"
    status = 422


class NotFound(DomainError):
    """The thing does not exist, or the caller may not know that it does."""

    code = "not_found"
    status = 404


class Forbidden(DomainError):
    """The caller's role may not take this action."""

    code = "forbidden"
    status = 403


class Conflict(DomainError):
    """The action is not possible in the current state."""

    code = "conflict"
    status = 409


class Unauthorized(DomainError):
    """No valid credentials were presented."""

    code = "unauthorized"
    status = 401
