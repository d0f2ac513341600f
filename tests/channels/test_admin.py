"""The channels admin as its users see it (Django test client, logged-in role users): channel
secrets are write-only, the inbox shows readable errors and no credentials, and only those
allowed to replay get the replay action."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from channels.models import ChannelKind, InboundEvent, SalesChannel
from channels.signatures import sign_custom
from orders.models import Order, Product
from tests.factories import SalesChannelFactory, make_user

WEBHOOK_SECRET = "whsec-stored-never-shown-1"
HEADER_VALUE = "hdr-value-stored-never-shown-2"
CREDENTIALS = {"client_id": "app-id-3", "client_secret": "cred-secret-never-shown-4"}


# --- SalesChannel: write-only secrets --------------------------------------------------------
@pytest.fixture
def bigcommerce(db) -> SalesChannel:
    return SalesChannelFactory(
        kind=ChannelKind.BIGCOMMERCE, slug="bc-store", name="BC store",
        webhook_secret=WEBHOOK_SECRET, auth_header_name="X-Hook-Token",
        auth_header_value=HEADER_VALUE, credentials=CREDENTIALS,
        api_base_url="https://api.bigcommerce.com/stores/abc123", api_version="v2",
    )  # fmt: skip


def change_url(channel: SalesChannel) -> str:
    return reverse("admin:channels_saleschannel_change", args=[channel.pk])


def form_data(channel: SalesChannel, **changes: str) -> dict[str, str]:
    """The change form as the browser posts it: every secret field left blank."""
    data = {
        "name": channel.name, "slug": channel.slug, "kind": channel.kind, "is_active": "on",
        "default_currency": channel.default_currency, "rounding": channel.rounding,
        "webhook_secret": "", "auth_header_name": channel.auth_header_name,
        "auth_header_value": "", "api_base_url": channel.api_base_url,
        "api_version": channel.api_version, "credentials_json": "", "_save": "Save",
    }  # fmt: skip
    data.update(changes)
    return data


def secrets_of(channel: SalesChannel) -> tuple[str, str, dict[str, Any]]:
    fresh = SalesChannel.objects.get(pk=channel.pk)
    return fresh.webhook_secret, fresh.auth_header_value, fresh.credentials


def test_channel_change_form_never_renders_the_stored_secrets(bigcommerce, client, ops_user):
    client.force_login(ops_user)

    response = client.get(change_url(bigcommerce))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="webhook_secret"' in html and 'type="password"' in html
    assert 'name="credentials_json"' in html
    for secret in (WEBHOOK_SECRET, HEADER_VALUE, "cred-secret-never-shown-4", "app-id-3"):
        assert secret not in html
    assert "X-Hook-Token" in html  # the header's name is not a secret; its value is


@pytest.mark.parametrize("role_user", ["cs_user", "reviewer_user", "finance_user"])
def test_view_only_roles_see_whether_secrets_are_set_never_the_secrets(
    bigcommerce, client, role_user, request
):
    """Customer service, reviewers and finance may view a channel but not change it: the page
    says which secrets are set and offers no field to replace them; the values never appear
    (with them, anyone in those groups could sign webhooks as the channel)."""
    client.force_login(request.getfixturevalue(role_user))

    response = client.get(change_url(bigcommerce))

    assert response.status_code == 200
    html = response.content.decode()
    for secret in (WEBHOOK_SECRET, HEADER_VALUE, "cred-secret-never-shown-4", "app-id-3"):
        assert secret not in html
    assert 'name="webhook_secret"' not in html and 'name="credentials_json"' not in html
    assert "Webhook secret: set" in html and "Auth header value: set" in html
    assert "API credentials: set" in html
    assert "X-Hook-Token" in html  # the header's name is not a secret


def test_the_add_form_says_what_the_webhook_url_is(db, client, ops_user):
    client.force_login(ops_user)
    page = client.get(reverse("admin:channels_saleschannel_add")).content.decode()
    assert "Webhook URL: /webhooks/ and then this slug, e.g. /webhooks/my-shop/" in page
    assert "/webhooks//" not in page


def test_the_change_form_says_which_secrets_are_set(db, client, ops_user):
    channel = SalesChannelFactory(slug="bare", webhook_secret="whsec-only-10")
    client.force_login(ops_user)

    html = client.get(change_url(channel)).content.decode()

    assert "Webhook secret: set" in html and "Auth header value: not set" in html
    assert "API credentials: not set" in html and "whsec-only-10" not in html


def test_channel_list_shows_whether_a_secret_is_set_but_not_the_secret(
    bigcommerce, client, ops_user
):
    client.force_login(ops_user)

    response = client.get(reverse("admin:channels_saleschannel_changelist"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "/webhooks/bc-store/" in html
    for secret in (WEBHOOK_SECRET, HEADER_VALUE, "cred-secret-never-shown-4"):
        assert secret not in html


def test_saving_with_the_secret_fields_blank_keeps_the_stored_secrets(
    bigcommerce, client, ops_user
):
    client.force_login(ops_user)

    response = client.post(change_url(bigcommerce), form_data(bigcommerce, name="BC renamed"))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert SalesChannel.objects.get(pk=bigcommerce.pk).name == "BC renamed"
    assert secrets_of(bigcommerce) == (WEBHOOK_SECRET, HEADER_VALUE, CREDENTIALS)


def test_saving_with_new_secrets_replaces_them(bigcommerce, client, ops_user):
    client.force_login(ops_user)
    new_credentials = {"client_id": "app-id-5", "access_token": "tok-6"}

    response = client.post(
        change_url(bigcommerce),
        form_data(
            bigcommerce, webhook_secret="whsec-rotated-7", auth_header_value="hdr-rotated-8",
            credentials_json=json.dumps(new_credentials),
        ),
    )  # fmt: skip

    assert response.status_code == 302
    assert secrets_of(bigcommerce) == ("whsec-rotated-7", "hdr-rotated-8", new_credentials)
    page = client.get(change_url(bigcommerce)).content.decode()
    for secret in ("whsec-rotated-7", "hdr-rotated-8", "tok-6"):
        assert secret not in page


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        pytest.param('{"client_id": "x",', "Not valid JSON: ", id="not-json"),
        pytest.param('["client_id", "x"]', "Credentials must be a JSON object", id="not-an-object"),
    ],
)
def test_invalid_credentials_json_shows_a_form_error_and_saves_nothing(
    bigcommerce, client, ops_user, credentials, message
):
    client.force_login(ops_user)

    response = client.post(
        change_url(bigcommerce),
        form_data(bigcommerce, name="Not saved", webhook_secret="not-saved-secret",
                  credentials_json=credentials),
    )  # fmt: skip

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["credentials_json"]
    assert errors["credentials_json"][0].startswith(message)
    assert message in response.content.decode()
    fresh = SalesChannel.objects.get(pk=bigcommerce.pk)
    assert fresh.name == "BC store"
    assert secrets_of(bigcommerce) == (WEBHOOK_SECRET, HEADER_VALUE, CREDENTIALS)
    # The re-shown form must not echo back the secret that was typed either.
    assert "not-saved-secret" not in response.content.decode()


def test_adding_a_channel_in_the_admin_stores_its_secret(db, client, ops_user):
    client.force_login(ops_user)

    response = client.post(
        reverse("admin:channels_saleschannel_add"),
        {
            "name": "New shop", "slug": "new-shop", "kind": "shopify", "is_active": "on",
            "default_currency": "USD", "rounding": "ROUND_HALF_UP",
            "webhook_secret": "whsec-new-9", "auth_header_name": "", "auth_header_value": "",
            "api_base_url": "", "api_version": "", "credentials_json": '{"a": 1}',
            "_save": "Save",
        },
    )  # fmt: skip

    assert response.status_code == 302
    channel = SalesChannel.objects.get(slug="new-shop")
    assert (channel.webhook_secret, channel.credentials) == ("whsec-new-9", {"a": 1})


# --- InboundEvent: readable errors, no credentials, replay -----------------------------------
SLUG = "acme"
SECRET = "acme-signing-secret"
ORDER = {
    "schema_version": 1, "external_id": "W-4001", "order_number": "#4001", "currency": "USD",
    "placed_at": "2026-11-02T09:30:00+00:00", "updated_at": "2026-11-02T10:00:00+00:00",
    "financial_status": "pending", "payment_method": "card",
    "shipping_address": {"line1": "1 Main St", "city": "Springfield", "country_code": "US"},
    "lines": [{"external_line_id": "L1", "channel_sku": "MUG-RED", "title": "Red mug",
               "quantity": 2, "unit_price": "12.50", "discount": "0.00", "tax": "2.00"}],
    "subtotal": "25.00", "discount_total": "0.00", "shipping_total": "5.00", "tax_total": "2.00",
    "total": "32.00",
}  # fmt: skip


@pytest.fixture
def storefront(db) -> SalesChannel:
    Product.objects.create(sku="MUG-RED", title="Red mug")
    return SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=SLUG, webhook_secret=SECRET)


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST a signed delivery to the real webhook and let processing run after commit."""

    def _deliver(event_id: str, order: Any, **headers: str) -> InboundEvent:
        body = json.dumps({"id": event_id, "topic": "order.created", "order": order}).encode()
        sig = sign_custom(secret=SECRET, body=body, timestamp=int(time.time()))
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/webhooks/{SLUG}/", data=body, content_type="application/json",
                HTTP_X_SIGNATURE=sig, **headers,
            )  # fmt: skip
        assert response.status_code == 202, response.content
        return InboundEvent.objects.get(pk=response.json()["event_id"])

    return _deliver


def event_url(event: InboundEvent) -> str:
    return reverse("admin:channels_inboundevent_change", args=[event.pk])


def changelist() -> str:
    return reverse("admin:channels_inboundevent_changelist")


def test_quarantined_event_page_lists_readable_errors_and_no_authorization_header(
    storefront, deliver, client, steward_user
):
    bad = {**ORDER, "lines": [{**ORDER["lines"][0], "quantity": "two"}]}
    event = deliver(
        "evt-bad", bad, HTTP_AUTHORIZATION="Bearer storefront-token-10",
        HTTP_X_STOREFRONT_REQUEST="req-11",
    )  # fmt: skip
    assert event.status == "quarantined"
    client.force_login(steward_user)

    response = client.get(event_url(event))

    assert response.status_code == 200
    html = response.content.decode()
    assert (
        "<li><code>/order/lines/0/quantity</code> must be of type integer "
        "(value: <code>&quot;two&quot;</code>)</li>"
    ) in html
    # The delivery's other headers are there to help; its credentials are not kept at all.
    assert "&quot;x-storefront-request&quot;: &quot;req-11&quot;" in html
    assert "&quot;authorization&quot;" not in html.lower()
    assert "storefront-token-10" not in html


def test_quarantined_event_shows_its_first_error_in_the_list(storefront, deliver, client, ops_user):
    event = deliver("evt-no-total", {k: v for k, v in ORDER.items() if k != "total"})
    client.force_login(ops_user)

    response = client.get(changelist() + "?status__exact=quarantined")

    assert response.status_code == 200
    assert "/order: missing required field(s): total" in response.content.decode()
    assert [e.pk for e in response.context["cl"].result_list] == [event.pk]


@pytest.fixture
def three_events(storefront, deliver) -> dict[str, InboundEvent]:
    """One quarantined by a mistyped rounding rule (fixed since), one whose order is not an
    object (still broken), one processed."""
    SalesChannel.objects.filter(pk=storefront.pk).update(rounding="HALF_UP")
    fixable = deliver("evt-fixable", ORDER)
    broken = deliver("evt-broken", "an order, as a string")  # fails its schema whatever the fix
    SalesChannel.objects.filter(pk=storefront.pk).update(rounding="ROUND_HALF_UP")
    processed = deliver("evt-ok", {**ORDER, "external_id": "W-4002"})
    assert (fixable.status, broken.status, processed.status) == (
        "quarantined", "quarantined", "processed"
    )  # fmt: skip
    return {"fixable": fixable, "broken": broken, "processed": processed}


def replay(client, *events: InboundEvent):
    return client.post(
        changelist(),
        {"action": "replay", "_selected_action": [str(e.pk) for e in events], "index": "0"},
        follow=True,
    )


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def test_replay_action_replays_fixed_events_and_reports_each_outcome(
    three_events, client, ops_user
):
    fixable, broken, processed = (three_events[k] for k in ("fixable", "broken", "processed"))
    client.force_login(ops_user)

    response = replay(client, fixable, broken, processed)

    assert response.status_code == 200
    shown = dict((m, level) for level, m in messages_of(response))
    assert shown[f"Event {fixable.pk} replayed: order created."] == "success"
    [still] = [m for m in shown if m.startswith(f"Event {broken.pk} is still quarantined: ")]
    assert shown[still] == "warning"
    assert "must be of type object" in still
    assert shown[f"Event {processed.pk} was not quarantined (processed): unchanged."] == "info"
    statuses = dict(InboundEvent.objects.values_list("pk", "status"))
    assert statuses == {fixable.pk: "replayed", broken.pk: "quarantined", processed.pk: "processed"}
    assert set(Order.objects.values_list("external_id", flat=True)) == {"W-4001", "W-4002"}


def test_replay_action_twice_replays_once(three_events, client, ops_user):
    fixable = three_events["fixable"]
    client.force_login(ops_user)
    replay(client, fixable)
    order = Order.objects.get(external_id="W-4001")
    before = (order.events.count(), InboundEvent.objects.get(pk=fixable.pk).attempts)

    response = replay(client, fixable)

    assert response.status_code == 200
    assert (order.events.count(), InboundEvent.objects.get(pk=fixable.pk).attempts) == before
    assert Order.objects.filter(external_id="W-4001").count() == 1


def test_replay_action_on_an_already_replayed_event_says_it_was_not_quarantined(
    three_events, client, ops_user
):
    """Nothing happens the second time, so the message must not claim a fresh replay."""
    fixable = three_events["fixable"]
    client.force_login(ops_user)
    replay(client, fixable)

    response = replay(client, fixable)

    assert messages_of(response) == [
        ("info", f"Event {fixable.pk} was not quarantined (replayed): unchanged.")
    ]


def test_customer_service_does_not_get_the_replay_action(three_events, client, cs_user):
    fixable = three_events["fixable"]
    client.force_login(cs_user)

    page = client.get(changelist())
    assert page.status_code == 200
    action_form = page.context["action_form"]  # None when the user has no action at all
    choices = [] if action_form is None else [n for n, _ in action_form.fields["action"].choices]
    assert "replay" not in choices
    assert "Replay selected quarantined events" not in page.content.decode()

    response = replay(client, fixable)

    assert response.status_code == 200
    assert not any("replayed" in m for _, m in messages_of(response))
    assert InboundEvent.objects.get(pk=fixable.pk).status == "quarantined"
    assert not Order.objects.filter(external_id="W-4001").exists()


def test_ops_admin_gets_the_replay_action(storefront, client, ops_user):
    client.force_login(ops_user)

    page = client.get(changelist())

    choices = dict(page.context["action_form"].fields["action"].choices)
    assert choices["replay"] == "Replay selected quarantined events"


def test_event_page_is_read_only(three_events, client, ops_user):
    event = three_events["fixable"]
    client.force_login(ops_user)

    page = client.get(event_url(event))
    post = client.post(event_url(event), {"status": "processed"})

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert post.status_code == 403
    assert InboundEvent.objects.get(pk=event.pk).status == "quarantined"


# --- raw payloads: the data steward and superusers only ------------------------------------------
PII_ORDER = {
    **ORDER, "external_id": "W-4010",
    "customer": {"email": "raw.only@example.com", "name": "Rita Raw"},
    "lines": [{**ORDER["lines"][0], "quantity": "two"}],  # quarantined: an error to show
}  # fmt: skip


@pytest.fixture
def raw_event(storefront, deliver) -> InboundEvent:
    event = deliver("evt-raw", PII_ORDER, HTTP_X_STOREFRONT_REQUEST="req-raw-12")
    assert event.status == "quarantined"
    return event


@pytest.mark.parametrize("role", ["customer_service", "reviewer", "finance", "ops_admin"])
def test_other_roles_see_the_event_row_but_no_body_headers_or_error_values(raw_event, client, role):
    client.force_login(make_user("someone", role))

    response = client.get(event_url(raw_event))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Rita Raw" not in html and "raw.only@example.com" not in html
    assert "req-raw-12" not in html and "x-storefront-request" not in html
    assert "Body (first 4 KB)" not in html and ">Headers<" not in html
    # The row itself: channel, topic, status, dedup key and the readable error, no value.
    assert "order.created" in html and "Quarantined" in html and "event:evt-raw" in html
    assert "<li><code>/order/lines/0/quantity</code> must be of type integer</li>" in html
    assert "&quot;two&quot;" not in html


@pytest.mark.parametrize("who", ["data_steward", "superuser"])
def test_stewards_and_superusers_see_the_body_headers_and_error_values(raw_event, client, who):
    user = make_user("root", superuser=True) if who == "superuser" else make_user("o", who)
    client.force_login(user)

    html = client.get(event_url(raw_event)).content.decode()

    assert "Rita Raw" in html and "raw.only@example.com" in html
    assert "&quot;x-storefront-request&quot;: &quot;req-raw-12&quot;" in html
    assert "(value: <code>&quot;two&quot;</code>)" in html


def test_the_data_steward_holds_the_view_raw_payload_permission_and_the_other_roles_do_not(db):
    assert make_user("o2", "data_steward").has_perm("channels.view_raw_payload")
    for role in ("customer_service", "reviewer", "finance", "ops_admin"):
        assert not make_user(f"u-{role}", role).has_perm("channels.view_raw_payload")
