"""Typed errors every driver raises instead of its SDK's exceptions.

The API turns them into HTTP statuses in exactly one place
(``images/api/exceptions.py``); workers use ``retryable`` to decide whether an
operation is worth another attempt.
"""

from __future__ import annotations


class ProviderError(Exception):
    """The back end failed or answered something we cannot use (HTTP 502)."""

    retryable: bool = False

    def __init__(self, message: str = "", *, detail: str = "", retry_after: float | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)
        self.message = str(self.args[0])
        # Free text for operators (logs, admin); never contains credentials.
        self.detail = detail
        # Seconds the provider asked us to wait (HTTP Retry-After); the worker
        # waits at least this long before the next attempt.
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class BackendError(ProviderError):
    """The driver hit a condition it does not know how to map (HTTP 500)."""


class NotFound(ProviderError):
    """The object does not exist on the provider (HTTP 404)."""


class NotSupported(ProviderError):
    """The driver or this account cannot perform the operation (HTTP 501)."""


class InvalidParameter(ProviderError):
    """The provider rejected a parameter value (HTTP 400)."""


class Conflict(ProviderError):
    """The request conflicts with the object's current state (HTTP 409)."""


class InvalidState(Conflict):
    """The object is in a state that does not allow the operation (HTTP 409)."""


class AuthFailure(ProviderError):
    """The account's stored credentials were rejected by the provider (HTTP 502).

    The API user authenticated fine; answering 401 would make the client
    re-prompt for credentials that are not the problem.
    """


class Unavailable(ProviderError):
    """The provider could not be reached or is overloaded (HTTP 502); retry later."""

    retryable = True


class Throttled(Unavailable):
    """The provider asked us to slow down (EC2 RequestLimitExceeded and friends)."""


class ProviderTimeout(Unavailable):
    """The provider did not answer in time (HTTP 504)."""


class DriverUnavailable(ProviderError):
    """A registered driver cannot be loaded (its client library is missing)."""
