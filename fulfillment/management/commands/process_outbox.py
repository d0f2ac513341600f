"""Drain the outbox now, in this process: dispatch every due action once.

For operators after an outage (the WMS is back: ``process_outbox``), after fixing what killed
actions (``process_outbox --retry-dead`` or ``--retry-dead ID ...``), and for installations
without a worker. Safe to run twice and alongside workers: each action is leased before it is
called, so nothing is performed twice.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fulfillment.models import ActionStatus, OutboundAction
from fulfillment.outbox.services import action_retry_dead, outbox_drain
from orders.actors import Actor
from orders.errors import DomainError


class Command(BaseCommand):
    help = (
        "Dispatch due outbox actions (ERP, WMS, notifications) now, one by one, with a "
        "progress bar on stderr. --retry-dead revives dead actions first (all, or the given "
        "ids). Prints succeeded / rescheduled / dead; exit code 1 while any action is dead."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--retry-dead", nargs="*", type=int, metavar="ID", default=None,
            help="Revive dead actions before draining: all of them, or only these ids.",
        )  # fmt: skip
        parser.add_argument("--limit", type=int, default=None, help="Dispatch at most N actions.")
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar (for logs and cron)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        actor = Actor.system("process_outbox")
        if options["retry_dead"] is not None:
            ids = options["retry_dead"] or list(
                OutboundAction.objects.filter(status=ActionStatus.DEAD)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            for action_id in ids:
                try:
                    action_retry_dead(action_id=action_id, actor=actor)
                except DomainError as exc:
                    raise CommandError(str(exc)) from None
            self.stdout.write(f"Revived {len(ids)} dead action(s).")

        quiet = options["no_progress"] or options["verbosity"] < 1

        def progress(ids: list[int]) -> Any:
            return tqdm(
                ids, desc="outbox", unit="action", file=sys.stderr, disable=quiet or not ids,
                dynamic_ncols=True,
            )  # fmt: skip

        summary = outbox_drain(limit=options["limit"], progress=progress)
        self.stdout.write(
            f"Dispatched {summary['due']} due action(s): {summary['succeeded']} succeeded, "
            f"{summary['rescheduled'] + summary['deferred']} rescheduled "
            f"({summary['deferred']} waiting for an open circuit breaker), "
            f"{summary['dead']} dead, {summary['skipped']} skipped (busy or done elsewhere)."
        )
        if summary["dead_total"]:
            raise CommandError(
                f"{summary['dead_total']} outbound action(s) are dead and need a person: see "
                "the downstream_failed incidents, fix the cause, then "
                "`process_outbox --retry-dead`.",
                returncode=1,
            )
