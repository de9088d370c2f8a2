"""The one root of the errors a caller can cause: what was asked for does not
exist, does not apply in its present state, is not the caller's to do, or is
not valid. Each carries a message saying what to fix and a stable code. The
faces map the kinds once: the API to a problem body and its HTTP status
(api.problems), the CLI to an exit code and one line on stderr (cli.app).
This module imports nothing, so every layer but `domain` may raise them."""

from __future__ import annotations

from typing import ClassVar


class BillbridgeError(Exception):
    """A refusal the caller can act on; ``code`` is stable, machine-readable."""

    default_code: ClassVar[str] = "ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class NotFound(BillbridgeError):
    """Nothing is known by the id or name given."""

    default_code = "NOT_FOUND"


class Conflict(BillbridgeError):
    """The thing exists, but the action does not apply in its present state."""

    default_code = "CONFLICT"


class Forbidden(BillbridgeError):
    """The caller may not do this."""

    default_code = "FORBIDDEN"


class Unauthenticated(Forbidden):
    """No caller could be identified: no credential, or one that is refused."""

    default_code = "UNAUTHENTICATED"


class Invalid(BillbridgeError):
    """The input is wrong; the message names what to change."""

    default_code = "INVALID"


class Unavailable(BillbridgeError):
    """The store or a system the request needs cannot take it now; nothing of
    it was kept, and the same request may be sent again."""

    default_code = "UNAVAILABLE"
