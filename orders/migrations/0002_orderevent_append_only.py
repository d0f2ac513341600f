"""The audit trail is append-only in the database too.

PostgreSQL refuses UPDATE and DELETE (TRUNCATE, an operator's wipe of a whole table, stays
possible). SQLite refuses UPDATE only: it has no TRUNCATE, and ``flush`` must be able to empty a
development database; the model refuses deletes there.
"""

from django.db import migrations

SQLITE = [
    """CREATE TRIGGER orders_orderevent_no_update BEFORE UPDATE ON orders_orderevent
       BEGIN SELECT RAISE(ABORT, 'orders_orderevent is append-only'); END;""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS orders_orderevent_no_update;",
]
POSTGRES = [
    """CREATE OR REPLACE FUNCTION orders_orderevent_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'orders_orderevent is append-only'; END; $$ LANGUAGE plpgsql;""",
    """CREATE TRIGGER orders_orderevent_append_only BEFORE UPDATE OR DELETE ON orders_orderevent
       FOR EACH ROW EXECUTE FUNCTION orders_orderevent_append_only();""",
]
POSTGRES_REVERSE = [
    "DROP TRIGGER IF EXISTS orders_orderevent_append_only ON orders_orderevent;",
    "DROP FUNCTION IF EXISTS orders_orderevent_append_only();",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE, "postgresql": POSTGRES}),
            _run({"sqlite": SQLITE_REVERSE, "postgresql": POSTGRES_REVERSE}),
        ),
    ]
