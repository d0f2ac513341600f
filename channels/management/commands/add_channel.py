"""Create (or update) a sales channel. The secret is stored and never printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator
from django.utils.text import slugify

from channels.models import ChannelKind, SalesChannel, credential_url_problems
from channels.services import sales_channel_upsert
from channels.signatures import whsec_problem
from config import integrations
from orders.errors import InvalidInput
from orders.money import ROUNDING_MODES, validate_currency


class Command(BaseCommand):
    help = "Create a sales channel, or update the one with this slug. Safe to run twice."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--kind", required=True, choices=ChannelKind.values)
        parser.add_argument("--slug", required=True, help="Its webhook URL: /webhooks/<slug>/")
        parser.add_argument("--secret", default="", help="Webhook signing secret")
        parser.add_argument("--name", default="", help="Display name (default: from the slug)")
        parser.add_argument("--api-url", default="", help="REST API base URL")
        parser.add_argument("--api-version", default="")
        parser.add_argument("--currency", default="USD", help="Default currency (ISO 4217)")
        parser.add_argument("--rounding", default="ROUND_HALF_UP", choices=ROUNDING_MODES)
        parser.add_argument(
            "--credentials", default="",
            help="API credentials as a JSON object, or @path/to/file.json",
        )  # fmt: skip
        parser.add_argument(
            "--auth-header", default="",
            help="NAME:VALUE of a fixed header the channel sends (BigCommerce without signing)",
        )  # fmt: skip
        parser.add_argument("--inactive", action="store_true", help="Create it switched off")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["slug"]
        if slugify(slug) != slug:
            raise CommandError(f"--slug {slug!r} must be lower-case letters, digits and dashes")
        try:
            currency = validate_currency(options["currency"])
        except InvalidInput as exc:
            raise CommandError(str(exc)) from None
        kind = options["kind"]
        if options["api_url"]:
            try:
                URLValidator(schemes=["http", "https"])(options["api_url"])
            except ValidationError:
                raise CommandError(
                    f"--api-url {options['api_url']!r} is not an http(s) URL"
                ) from None
            # The outbound URL guard's policy: https, no private or metadata addresses.
            problem = integrations.url_problem(options["api_url"])
            if problem:
                raise CommandError(
                    f"--api-url {integrations.where(options['api_url'])} refused: {problem}"
                )
        _check_secret(kind, options["secret"])
        if kind in ("shopify", "woocommerce", "custom") and not options["secret"]:
            existing = SalesChannel.objects.filter(slug=slug).values_list(
                "webhook_secret", flat=True
            )
            if not any(existing):
                raise CommandError(f"{_a(kind)} channel needs --secret to verify its webhooks")
        if kind in ("bigcommerce", "amazon") and not options["api_url"]:
            if not SalesChannel.objects.filter(slug=slug).exclude(api_base_url="").exists():
                raise CommandError(f"{_a(kind)} channel needs --api-url to pull orders from")
        fields: dict[str, Any] = {
            "kind": kind, "default_currency": currency, "rounding": options["rounding"],
            "is_active": not options["inactive"],
        }  # fmt: skip
        simple = {"name": "name", "secret": "webhook_secret", "api_url": "api_base_url",
                  "api_version": "api_version"}  # fmt: skip
        for option, field in simple.items():
            if options[option]:
                fields[field] = options[option]
        if options["credentials"]:
            fields["credentials"] = self._credentials(options["credentials"])
        if options["auth_header"]:
            name, sep, value = options["auth_header"].partition(":")
            if not sep or not name.strip() or not value.strip():
                raise CommandError("--auth-header must look like NAME:VALUE")
            fields["auth_header_name"], fields["auth_header_value"] = name.strip(), value.strip()
        channel, created, changed = sales_channel_upsert(slug=slug, **fields)
        verb = "Created" if created else ("Updated" if changed else "Unchanged:")
        shown = [c for c in changed if c not in ("webhook_secret", "credentials")]
        secret_note = " (secret stored)" if "webhook_secret" in changed else ""
        if "webhook_secret" in changed and channel.previous_secret_accepted():
            until = channel.previous_secret_expires_at
            secret_note = (
                f" (secret stored; the previous one is accepted until {until:%Y-%m-%d %H:%M} UTC)"
            )
        self.stdout.write(
            self.style.SUCCESS(f"{verb} channel {slug} ({kind}){secret_note}")
            + (f" — changed: {', '.join(shown)}" if shown and not created else "")
        )
        self.stdout.write(f"Webhook URL: /webhooks/{slug}/")

    def _credentials(self, raw: str) -> dict[str, Any]:
        try:
            text = Path(raw[1:]).read_text() if raw.startswith("@") else raw
            value = json.loads(text)
        except OSError as exc:
            raise CommandError(f"Cannot read {raw[1:]}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise CommandError(f"--credentials is not valid JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise CommandError("--credentials must be a JSON object")
        problems = credential_url_problems(value)
        if problems:
            raise CommandError(f"--credentials: {'; '.join(problems)}")
        return value


def _check_secret(kind: str, secret: str) -> None:
    """A BigCommerce (Standard Webhooks) ``whsec_`` secret must decode to a usable key."""
    if kind == ChannelKind.BIGCOMMERCE and (problem := whsec_problem(secret)):
        raise CommandError(f"--secret: {problem}")


def _a(kind: str) -> str:
    return ("An " if kind[0] in "aeiou" else "A ") + kind
