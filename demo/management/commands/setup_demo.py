"""Load demo data: role users, channels with the vendors' sample orders delivered through the
real webhook and polling paths, and orders in several states. Safe to re-run."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from demo import builders, deliveries, finance, returns, summary


class Command(BaseCommand):
    help = "Create demo users (one per role), customers, channels and orders. Safe to run twice."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-passwords", action="store_true", help="Give every demo user a new password."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        passwords = builders.users_ensure(reset=options["reset_passwords"])
        builders.stock_ensure()
        self.stdout.write("Delivering the vendors' sample orders:")
        deliveries.run(self.stdout.write)
        channels = builders.webstore_channel_ensure()
        customers = builders.customers_ensure()
        created = builders.orders_create(channels, customers, write=self.stdout.write)
        builders.carrier_scans_play(write=self.stdout.write)
        self.stdout.write(builders.reorder_points_ensure())
        builders.return_policy_ensure()
        self.stdout.write("Returns:")
        returns.returns_play(write=self.stdout.write)
        self.stdout.write("Finance: last month reconciled (log in as finance):")
        finance.finance_month_play(write=self.stdout.write)
        self.stdout.write("Weekly leadership summary (this week so far):")
        summary.weekly_summary_play(write=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready: {created} new order(s)."))
        example = builders.status_link_example()
        if example is not None:
            external_id, url = example
            self.stdout.write(f"Order {external_id} as its customer sees it (status page):")
            self.stdout.write(f"  {url}")
        self.stdout.write("Demo users (username / password / role):")
        for username, role in builders.DEMO_USERS.items():
            self.stdout.write(f"  {username:<9} {passwords[username]:<24} {role or 'superuser'}")
        self.stdout.write(f"(kept in {builders.credentials_path()})")
