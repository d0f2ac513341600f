"""The OpenAPI schema class of every app's API: it documents the refusals that the shared
plumbing (``config.api``: permissions, pagination, ``exception_handler``) answers with.

A module of its own: drf-spectacular's ``openapi`` imports DRF's views, which load the
permission and pagination classes from ``config.api`` at import time.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """What every refusal carries (``config.api.exception_handler``); on a 400, ``errors``
    names the fields."""

    code = serializers.CharField()
    detail = serializers.CharField()

    def get_fields(self) -> dict[str, serializers.Field]:
        # Added here: a declared ``errors`` would hide the serializer's own ``errors``.
        fields = super().get_fields()
        fields["errors"] = serializers.DictField(
            required=False, help_text="Field name -> messages (400)."
        )
        return fields


CONFLICT = OpenApiResponse(
    ErrorSerializer,
    description="The row's state refuses the move (transition_not_allowed, condition_not_met, "
    "stale_state).",
)

# For operations whose body names a row (a create for an order): no id in the path says so.
NAMED_ROW_MISSING = OpenApiResponse(
    ErrorSerializer, description="A row the body names does not exist (not_found)."
)


class AutoSchema(SpectacularAutoSchema):
    """Documents the refusals every operation can answer with, as ``Error``: 401 without
    credentials, 403 without the permission, 404 for an unknown id or page, 400 for a body or
    filters that do not validate, 415 for a body it cannot read. An operation's own declarations
    (its 409) stay as they are."""

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = super()._get_response_bodies(direction)
        for code, description in self._refusals():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=description), code,
                    direction=direction,
                )  # fmt: skip
        return dict(sorted(responses.items()))

    def _refusals(self) -> list[tuple[str, str]]:
        refusals = []
        has_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer()
        if has_body or (self._is_list_view() and self.get_filter_backends()):
            refusals.append(("400", "Invalid input; `errors` names the fields."))
        if has_body:
            refusals.append(("415", "A body this operation cannot read (media type, encoding)."))
        if self.get_auth():
            refusals.append(("401", "No token or session, or an unknown one."))
            refusals.append(("403", "Your role may not do this."))
        if "{" in self.path or (self._is_list_view() and self._get_paginator()):
            refusals.append(("404", "No such row, or no such page."))
        return refusals
