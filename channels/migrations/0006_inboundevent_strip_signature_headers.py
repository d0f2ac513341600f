"""Events stored before signature headers were dropped: strip them (and any credential) from
``InboundEvent.headers``. A stored body with its signature is a delivery anyone who reads the
inbox could replay. Only rows holding one of the headers are read, in batches."""

from __future__ import annotations

from typing import Any

from django.db import migrations

# As channels.services.SECRET_HEADERS was when this ran (a migration does not follow the code).
DROPPED = frozenset({
    "authorization", "cookie", "x-api-key", "proxy-authorization",
    "x-shopify-hmac-sha256", "x-wc-webhook-signature", "webhook-signature", "x-signature",
})  # fmt: skip
BATCH = 500


def strip_headers(apps: Any, schema_editor: Any) -> None:
    channel_model = apps.get_model("channels", "SalesChannel")
    event_model = apps.get_model("channels", "InboundEvent")
    db = schema_editor.connection.alias
    for channel_id, auth_header in channel_model.objects.using(db).values_list(
        "pk", "auth_header_name"
    ):
        drop = DROPPED | ({auth_header.lower()} if auth_header else set())
        rows = (
            event_model.objects.using(db)
            .filter(channel_id=channel_id, headers__has_any_keys=sorted(drop))
            .only("pk", "headers")
            .order_by("pk")
        )
        batch = []
        for event in rows.iterator(chunk_size=BATCH):
            event.headers = {k: v for k, v in event.headers.items() if k.lower() not in drop}
            batch.append(event)
            if len(batch) == BATCH:
                event_model.objects.using(db).bulk_update(batch, ["headers"])
                batch = []
        if batch:
            event_model.objects.using(db).bulk_update(batch, ["headers"])


class Migration(migrations.Migration):
    dependencies = [("channels", "0005_skumapping_product_to_orders")]

    operations = [migrations.RunPython(strip_headers, migrations.RunPython.noop, elidable=True)]
