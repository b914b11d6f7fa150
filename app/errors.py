"""Domain errors with stable dotted codes; `app.main` maps them to HTTP, `chat` to error frames."""

from __future__ import annotations


class DomainError(Exception):
    """A refusal the user can act on. `code` is stable API; `message` is for people."""

    status = 400

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["fields"] = [{"field": self.field, "message": self.message}]
        return body


class Invalid(DomainError):
    status = 422


class Unauthorized(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Gone(DomainError):
    status = 410


class RateLimited(DomainError):
    status = 429

    def __init__(
        self, code: str, message: str, *, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(code, message, field=field)
        # Seconds to wait before trying again (HTTP `Retry-After`), when known.
        self.retry_after = retry_after
