"""Poll carriers for tracking now, in this process (the polling fallback's round)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from fulfillment.tracking_poll import tracking_poll_round


class Command(BaseCommand):
    help = (
        "Ask the carriers about parcels on their way that have been quiet for "
        "TRACKING_POLL_QUIET_SECONDS (--all: every parcel on its way) and record what they say, "
        "with a progress bar on stderr. Safe to run twice and alongside beat: what is known "
        "already is recorded once. Prints the count per outcome; exit code 1 when a carrier "
        "refused (failed) a poll."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--all", action="store_true", help="Every parcel on its way, however recent its news."
        )
        parser.add_argument(
            "--limit", type=int, default=None,
            help="At most N parcels (default TRACKING_POLL_BATCH), quietest first.",
        )  # fmt: skip
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar (for logs and cron)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        if options["all"] and limit is None:
            limit = 10**9  # every parcel on its way
        quiet = options["no_progress"] or options["verbosity"] < 1

        def progress(ids: list[int]) -> Any:
            return tqdm(
                ids, desc="tracking", unit="parcel", file=sys.stderr, disable=quiet or not ids,
                dynamic_ncols=True,
            )  # fmt: skip

        summary = tracking_poll_round(all_in_flight=options["all"], limit=limit,
                                      progress=progress)  # fmt: skip
        self.stdout.write(
            f"Polled {summary['polled']} parcel(s): {summary['changed']} changed, "
            f"{summary['unchanged']} unchanged, {summary['retry']} to retry next round "
            f"(carrier unavailable), {summary['failed']} refused by the carrier, "
            f"{summary['skipped']} skipped (no longer on their way)."
        )
        if summary["failed"]:
            raise CommandError(
                f"{summary['failed']} poll(s) were refused by the carrier (an unknown tracking "
                "number, a carrier not configured here): see the tracking_poll.carrier_failed "
                "log lines.",
                returncode=1,
            )
