"""Role groups and their least-privilege permissions.

The groups are created by migration ``orders.0003_roles`` and kept in step with this table after
every ``migrate`` (a post_migrate hook), so an app that adds a model only edits ``ROLES``.
Patterns: ``app.codename`` for one permission, ``app.*`` for all of an app's permissions, and
``-app.codename`` to take one away again (after the others, whatever the order).
"""

from __future__ import annotations

from typing import Any

VIEW_ORDERS = [
    "orders.view_order", "orders.view_orderline", "orders.view_orderevent",
    "orders.view_customer", "orders.view_incident", "orders.view_product",
    "channels.view_saleschannel", "channels.view_inboundevent", "channels.view_skumapping",
    "fulfillment.view_warehouse", "fulfillment.view_stocklevel", "fulfillment.view_reservation",
    "fulfillment.view_shipment", "fulfillment.view_shipmentline", "fulfillment.view_trackingevent",
    "fulfillment.view_routingdecision", "fulfillment.view_outboundaction",
    "fulfillment.view_returnpolicy", "orders.view_refund", "orders.view_refundline",
    "orders.view_refundpayment", "orders.view_orderpayment", "fulfillment.view_return",
    "fulfillment.view_returnline",
]  # fmt: skip

# What shows personal data whole: only data_steward (and superusers) hold it.
PERSONAL_DATA_WHOLE = [
    "orders.view_contact_details", "orders.view_raw_payload", "channels.view_raw_payload",
    "fulfillment.view_raw_carrier_payload", "orders.download_privacy_export",
]  # fmt: skip

ROLES: dict[str, list[str]] = {
    # Answers customers: sees orders, holds or cancels on request, fixes customer records,
    # works incidents. Never touches payments or credit terms. Needs the street and phone to
    # answer "where is my parcel" and to call back.
    "customer_service": [
        *VIEW_ORDERS, "orders.view_contact_details",
        "orders.hold_order", "orders.cancel_order", "orders.change_customer",
        "orders.work_incident", "reviews.view_reviewcase",
        # Returns and refunds: authorizes, rejects and receives returns; refunds up to the
        # limit finance sets for the role (orders.RefundLimit), above it finance decides.
        "fulfillment.work_return", "fulfillment.add_return", "orders.issue_refund",
        # The incidents screen's "Map to product": the person who sees an order held for an
        # unmapped channel SKU maps it to our product and releases the held orders (release is
        # orders.hold_order above). Adding only: changing or deleting a mapping stays with ops.
        "channels.add_skumapping",
        # The incidents screen itself (reviews.incident_views): trends and the fixes.
        "orders.view_incident_screen",
    ],
    # Decides on high-risk orders: approve, hold, or reject (cancel). Compares the shipping and
    # billing addresses whole (a parcel forwarder, a hotel), so sees street and phone.
    "reviewer": [
        *VIEW_ORDERS, "orders.view_contact_details",
        "orders.review_order", "orders.hold_order", "orders.cancel_order",
        "orders.work_incident", "reviews.view_reviewcase", "reviews.view_fraudsettings",
    ],
    # Money: payment status, refunds, credit terms; reads orders. No street lines or phone
    # numbers (no view_contact_details): name, email and the address's locality are enough
    # for payments, invoices and tax (see orders/personal_data.py).
    "finance": [
        *VIEW_ORDERS,
        "orders.manage_payment", "orders.manage_credit", "orders.change_customer",
        "orders.issue_refund", "orders.issue_any_refund", "orders.view_refundlimit",
        "orders.change_refundlimit", "orders.add_refundlimit", "orders.delete_refundlimit",
        # The bank accounts whose statements are imported, and their CSV column mappings.
        "reconciliation.view_bankaccount", "reconciliation.add_bankaccount",
        "reconciliation.change_bankaccount",
        # The finance screens (reconciliation.views): the period close page and its drill-down,
        # the payouts list; resolving an item, matching a deposit, closing a period.
        "reconciliation.view_varianceitem", "reconciliation.change_varianceitem",
        "reconciliation.view_payout", "reconciliation.view_link", "reconciliation.change_link",
        "reconciliation.close_period",
        # The KPI page and API (reviews.kpis): automation figures, no personal data.
        "reviews.view_kpis",
    ],
    # Runs the system: every permission of the back office's own apps and its schedules except
    # those that show personal data whole (PERSONAL_DATA_WHOLE: street lines and phones, raw
    # payloads, data exports): running the pipeline, its dashboard, retries and replays needs
    # none of it. May see and revoke API tokens but not issue them (that would be acting as
    # another user), and lift login lockouts. User accounts and tokens stay with superusers.
    "ops_admin": [
        "orders.*", "channels.*", "fulfillment.*", "reviews.*", "reconciliation.*",
        "django_celery_beat.*", "authtoken.view_tokenproxy", "authtoken.delete_tokenproxy",
        "axes.view_accessattempt", "axes.delete_accessattempt", "axes.view_accessfailurelog",
        *(f"-{perm}" for perm in PERSONAL_DATA_WHOLE),
    ],
    # The data itself is the work: a vendor payload that will not parse (the raw body, headers
    # and audit snapshots whole), a customer's data export for a privacy request. Granted to few
    # people, for as long as the work lasts; reads only, no lifecycle moves.
    "data_steward": [
        *VIEW_ORDERS, *PERSONAL_DATA_WHOLE, "fulfillment.view_carrierinboundevent",
    ],
}  # fmt: skip


def sync_roles(*, apps: Any, using: str = "default") -> dict[str, int]:
    """Create the groups if missing and set each one's permissions to exactly ``ROLES``."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True  # historical app configs need this to get permissions
        create_permissions(app_config, apps=apps, verbosity=0, using=using)
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    counts = {}
    for role, patterns in ROLES.items():
        group, _ = group_model.objects.using(using).get_or_create(name=role)
        perms: dict[int, Any] = {}
        removed: set[tuple[str, str]] = set()
        for pattern in patterns:
            if pattern.startswith("-"):
                app_label, codename = pattern[1:].split(".", 1)
                removed.add((app_label, codename))
                continue
            app_label, codename = pattern.split(".", 1)
            qs = permission_model.objects.using(using).filter(content_type__app_label=app_label)
            if codename != "*":
                qs = qs.filter(codename=codename)
            perms.update({p.pk: p for p in qs.select_related("content_type")})
        kept = [p for p in perms.values() if (p.content_type.app_label, p.codename) not in removed]
        group.permissions.set(kept)
        counts[role] = len(kept)
    return counts


def sync_roles_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    from django.apps import apps as global_apps

    sync_roles(apps=kwargs.get("apps") or global_apps, using=using)
