"""Privacy requests: an incident category, who may download an export, and the one exception
to the append-only audit trail.

The audit trail stays append-only (migration 0002), except for a redaction: an UPDATE of an
order event is let through only when

- the row has a permit in ``orders_orderevent_scrub_permit`` (written by ``orders.privacy`` in
  the redaction's own transaction and deleted again before it commits, so no other transaction
  ever sees one), and
- nothing but ``data`` changes (who, when, what, which states and the correlation id stay).

DELETE stays refused on PostgreSQL. Without a permit every UPDATE is refused, as before.
"""

from django.db import migrations, models

COLUMNS = ("id", "order_id", "at", "actor_kind", "actor_id", "action", "field", "from_state",
           "to_state", "correlation_id")  # fmt: skip

PERMIT_TABLE = "CREATE TABLE orders_orderevent_scrub_permit (event_id bigint PRIMARY KEY)"

SQLITE = [
    PERMIT_TABLE,
    "DROP TRIGGER IF EXISTS orders_orderevent_no_update;",
    f"""CREATE TRIGGER orders_orderevent_no_update BEFORE UPDATE ON orders_orderevent
       WHEN NOT EXISTS (SELECT 1 FROM orders_orderevent_scrub_permit p WHERE p.event_id = OLD.id)
            OR {" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in COLUMNS)}
       BEGIN SELECT RAISE(ABORT, 'orders_orderevent is append-only'); END;""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS orders_orderevent_no_update;",
    """CREATE TRIGGER orders_orderevent_no_update BEFORE UPDATE ON orders_orderevent
       BEGIN SELECT RAISE(ABORT, 'orders_orderevent is append-only'); END;""",
    "DROP TABLE IF EXISTS orders_orderevent_scrub_permit;",
]
POSTGRES = [
    PERMIT_TABLE,
    f"""CREATE OR REPLACE FUNCTION orders_orderevent_append_only() RETURNS trigger AS $$
       BEGIN
         IF TG_OP = 'UPDATE'
            AND EXISTS (SELECT 1 FROM orders_orderevent_scrub_permit p WHERE p.event_id = OLD.id)
            AND ({", ".join(f"NEW.{c}" for c in COLUMNS)})
                IS NOT DISTINCT FROM ({", ".join(f"OLD.{c}" for c in COLUMNS)})
         THEN RETURN NEW;
         END IF;
         RAISE EXCEPTION 'orders_orderevent is append-only';
       END; $$ LANGUAGE plpgsql;""",
]
POSTGRES_REVERSE = [
    """CREATE OR REPLACE FUNCTION orders_orderevent_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'orders_orderevent is append-only'; END; $$ LANGUAGE plpgsql;""",
    "DROP TABLE IF EXISTS orders_orderevent_scrub_permit;",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("orders", "0007_product")]

    operations = [
        migrations.AlterField(
            model_name="incident",
            name="category",
            field=models.CharField(
                choices=[
                    ("schema_invalid", "Schema invalid"),
                    ("sku_unmapped", "SKU unmapped"),
                    ("inventory_unavailable", "Inventory unavailable"),
                    ("address_format_invalid", "Address format invalid"),
                    ("address_undeliverable", "Address undeliverable"),
                    ("payment_ineligible", "Payment ineligible"),
                    ("fraud_review", "Fraud review"),
                    ("downstream_failed", "Downstream failed"),
                    ("duplicate_suspected", "Duplicate suspected"),
                    ("privacy_request", "Privacy request"),
                    ("other", "Other"),
                ],
                db_index=True,
                max_length=32,
            ),
        ),
        migrations.AlterModelOptions(
            name="incident",
            options={
                "ordering": ["-last_seen_at", "-id"],
                "permissions": [
                    ("work_incident", "Can acknowledge and resolve incidents"),
                    ("download_privacy_export", "Can download a customer's data export"),
                ],
            },
        ),
        migrations.RunPython(
            _run({"sqlite": SQLITE, "postgresql": POSTGRES}),
            _run({"sqlite": SQLITE_REVERSE, "postgresql": POSTGRES_REVERSE}),
        ),
    ]
