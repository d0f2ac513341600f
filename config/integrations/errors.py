"""The one error every integration raises: each family (channels, address verifiers, carriers,
downstream systems) subclasses it under its own name, so callers catch their family's error and
the outbox, the inbox and the checks all read the same four facts."""

from __future__ import annotations


class IntegrationError(Exception):
    """A call to another system failed, or its answer cannot be used.

    ``retryable``: the same call may succeed later (timeouts, refused connections, 408, 425, 429,
    5xx). ``status``: the HTTP status, when an answer came at all. ``ambiguous``: the request may
    have been processed (a read timeout, a dropped answer), so a create must look for its first
    result before it is sent again. ``retry_after``: seconds the vendor asked us to wait.
    The message never holds personal data, a secret or a response body: it is stored and shown.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.ambiguous = ambiguous
        self.retry_after = retry_after


class URLRefused(IntegrationError):
    """The outbound URL guard refused a call: a URL from configuration or data points where we
    never send requests (plain http, a private, loopback, link-local or metadata address, a
    redirect to another host). A configuration problem: never retryable. The message names the
    call with ``where(url)`` and the reason, never a credential; ``place`` is that ``where(url)``
    once the session has named it."""

    place: str = ""

    def __init__(self, message: str, **kwargs: object) -> None:
        kwargs.setdefault("retryable", False)
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
