"""The base of every domain error: a stable ``code`` and the HTTP status views answer with.

It lives in ``config`` (which imports no app) so that the API plumbing in ``config/api.py`` can
map any app's errors to ``{"code", "detail"}`` without importing the apps that raise them.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
