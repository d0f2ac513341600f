"""Domain errors with stable codes. Views map them to ``{"code", "detail"}`` and a status."""

from __future__ import annotations

# The base lives in config so the API layer can map errors without importing orders; it stays
# importable from here, the vocabulary every app raises from.
from config.errors import DomainError

__all__ = [
    "DomainError",
    "InvalidInput",
    "NotFound",
    "PermissionRefused",
    "StaleState",
    "TransitionRefused",
]


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class TransitionRefused(DomainError):
    """A state change that the current state, its conditions or the actor's rights do not allow."""

    code = "transition_not_allowed"
    http_status = 409


class StaleState(TransitionRefused):
    """The row moved on since the caller looked at it; they must look again before acting."""

    code = "stale_state"


class PermissionRefused(DomainError):
    code = "permission_denied"
    http_status = 403


class InvalidInput(DomainError):
    code = "invalid"
    http_status = 400
