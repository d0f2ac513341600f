"""The channel management commands as an operator runs them: ``call_command`` with real files,
the real database and (for ``poll_channel``) a loopback Amazon SP-API sandbox serving Amazon's
published examples as they are.

Each command must exit non-zero with a clear message on bad input and be safe to run twice.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.forms.models import model_to_dict
from pytest_httpserver import HTTPServer

from channels.adapters import amazon
from channels.models import ChannelKind, InboundEvent, SalesChannel
from channels.services import inbound_event_ingest_file, inbound_event_process
from orders.models import Incident, Order, Product
from tests.factories import SalesChannelFactory

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples"
SHOPIFY_GET = SAMPLES / "shopify" / "order_450789469_get.json"  # {"order": {...}}, USD
SHOPIFY_EUR = SAMPLES / "shopify" / "order_1073459976_create_eur.json"  # {"order": {...}}, EUR
SHOPIFY_PAYOUT = SAMPLES / "shopify" / "payout_623721858_get.json"  # not an order at all
WOO_ORDER = SAMPLES / "woocommerce" / "order_727_get.json"  # a bare order object
AMAZON_ORDERS_EXAMPLE = SAMPLES / "amazon" / "getOrders_v0_response_example.json"
AMAZON_ORDERS_SANDBOX = SAMPLES / "amazon" / "getOrders_v0_sandbox_TEST_CASE_200.json"
AMAZON_ITEMS_SANDBOX = SAMPLES / "amazon" / "getOrderItems_v0_sandbox_TEST_CASE_200.json"

SECRET = "whsec-never-print-me-42"


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(*args: str) -> Run:
    """Run a command as ``manage.py`` would; a ``SystemExit`` becomes the exit code."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exc:
        return Run(int(exc.code or 0), out.getvalue(), err.getvalue())
    return Run(0, out.getvalue(), err.getvalue())


def fails(*args: str) -> CommandError:
    """Run a command that must refuse: a ``CommandError`` (exit code 1), nothing printed."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(*args, stdout=out, stderr=err)
    assert caught.value.returncode == 1
    return caught.value


def channels_state() -> list[dict[str, Any]]:
    return [
        {**model_to_dict(c), "created_at": c.created_at}
        for c in SalesChannel.objects.order_by("slug")
    ]


# =================================================================================================
# add_channel
# =================================================================================================
def test_add_channel_creates_the_channel_and_prints_its_webhook_url(db):
    result = run(
        "add_channel", "--kind", "shopify", "--slug", "acme-shop", "--secret", SECRET,
        "--currency", "eur", "--rounding", "ROUND_HALF_EVEN", "--api-version", "2026-07",
    )  # fmt: skip

    assert result.code == 0
    channel = SalesChannel.objects.get()
    assert (channel.slug, channel.kind, channel.name) == ("acme-shop", "shopify", "Acme Shop")
    assert channel.webhook_secret == SECRET
    assert (channel.default_currency, channel.rounding) == ("EUR", "ROUND_HALF_EVEN")
    assert channel.api_version == "2026-07"
    assert channel.is_active is True
    assert result.out.splitlines() == [
        "Created channel acme-shop (shopify) (secret stored)",
        "Webhook URL: /webhooks/acme-shop/",
    ]
    assert result.err == ""


def test_add_channel_run_twice_says_unchanged_and_changes_nothing(db):
    args = ("add_channel", "--kind", "shopify", "--slug", "acme-shop", "--secret", SECRET,
            "--name", "Acme", "--currency", "USD")  # fmt: skip
    assert run(*args).code == 0
    before = channels_state()

    again = run(*args)

    assert again.code == 0
    assert again.out.splitlines()[0].startswith("Unchanged")
    assert "acme-shop" in again.out.splitlines()[0]
    assert "— changed:" not in again.out
    assert channels_state() == before


def test_add_channel_never_prints_the_secret_the_auth_header_value_or_credentials(db, tmp_path):
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"client_secret": "cred-secret-77", "refresh_token": "Atzr|tok"}))
    outputs = [
        run("add_channel", "--kind", "shopify", "--slug", "s1", "--secret", SECRET),
        run("add_channel", "--kind", "shopify", "--slug", "s1", "--secret", SECRET + "-rotated"),
        run(
            "add_channel",
            "--kind",
            "bigcommerce",
            "--slug",
            "bc",
            "--api-url",
            "https://api.bigcommerce.com/stores/abc",
            "--auth-header",
            "X-Hook-Token:hdr-secret-9",
            "--credentials",
            f"@{creds}",
        ),  # fmt: skip
        run(
            "add_channel",
            "--kind",
            "bigcommerce",
            "--slug",
            "bc",
            "--auth-header",
            "X-Hook-Token:hdr-secret-10",
            "--credentials",
            '{"client_secret": "cred-secret-78"}',
        ),  # fmt: skip
    ]

    assert [r.code for r in outputs] == [0, 0, 0, 0]
    assert "secret stored" in outputs[1].out  # the rotation is acknowledged, not shown
    printed = "".join(r.out + r.err for r in outputs)
    for secret in (SECRET, "rotated", "hdr-secret", "cred-secret", "Atzr|tok"):
        assert secret not in printed
    bc = SalesChannel.objects.get(slug="bc")
    assert (bc.auth_header_name, bc.auth_header_value) == ("X-Hook-Token", "hdr-secret-10")
    assert bc.credentials == {"client_secret": "cred-secret-78"}
    assert SalesChannel.objects.get(slug="s1").webhook_secret == SECRET + "-rotated"


def test_add_channel_update_of_one_field_reports_what_changed(db):
    run("add_channel", "--kind", "shopify", "--slug", "acme-shop", "--secret", SECRET)
    before = SalesChannel.objects.get()

    result = run("add_channel", "--kind", "shopify", "--slug", "acme-shop", "--currency", "CAD")

    assert result.code == 0
    first = result.out.splitlines()[0]
    assert first.startswith("Updated channel acme-shop (shopify)")
    assert first.endswith("changed: default_currency")
    after = SalesChannel.objects.get()
    assert after.default_currency == "CAD"
    # Everything not named on the command line is kept, the secret above all.
    assert (after.webhook_secret, after.name, after.rounding, after.created_at) == (
        before.webhook_secret,
        before.name,
        before.rounding,
        before.created_at,
    )


def test_add_channel_without_secret_updates_a_channel_that_has_one(db):
    run("add_channel", "--kind", "woocommerce", "--slug", "woo", "--secret", SECRET)

    result = run("add_channel", "--kind", "woocommerce", "--slug", "woo", "--inactive")

    assert result.code == 0
    assert "changed: is_active" in result.out
    channel = SalesChannel.objects.get()
    assert (channel.is_active, channel.webhook_secret) == (False, SECRET)


def test_add_channel_reads_credentials_from_a_file(db, tmp_path):
    creds = {"client_id": "amzn1.app", "client_secret": "s", "refresh_token": "r",
             "marketplace_ids": ["ATVPDKIKX0DER"]}  # fmt: skip
    path = tmp_path / "amazon.json"
    path.write_text(json.dumps(creds))

    result = run(
        "add_channel", "--kind", "amazon", "--slug", "amzn-us",
        "--api-url", "https://sellingpartnerapi-na.amazon.com", "--credentials", f"@{path}",
    )  # fmt: skip

    assert result.code == 0
    channel = SalesChannel.objects.get()
    assert channel.credentials == creds
    assert channel.api_base_url == "https://sellingpartnerapi-na.amazon.com"


@pytest.fixture
def existing_shop(db) -> SalesChannel:
    return SalesChannelFactory(
        kind=ChannelKind.SHOPIFY, slug="existing", webhook_secret=SECRET, default_currency="USD"
    )


BAD_ADD_CHANNEL = [
    pytest.param(
        ["--kind", "shopify", "--slug", "Acme Shop", "--secret", "x"],
        r"--slug 'Acme Shop' must be lower-case letters, digits and dashes",
        id="slug-spaces",
    ),
    pytest.param(
        ["--kind", "shopify", "--slug", "acme_shop!", "--secret", "x"],
        r"--slug 'acme_shop!' must be lower-case",
        id="slug-punctuation",
    ),
    pytest.param(
        ["--kind", "shopify", "--slug", "acme", "--secret", "x", "--currency", "XYZ"],
        r"Unknown currency code 'XYZ'",
        id="unknown-currency",
    ),
    pytest.param(
        ["--kind", "shopify", "--slug", "acme"],
        r"A shopify channel needs --secret to verify its webhooks",
        id="shopify-no-secret",
    ),
    pytest.param(
        ["--kind", "woocommerce", "--slug", "acme"],
        r"A woocommerce channel needs --secret",
        id="woocommerce-no-secret",
    ),
    pytest.param(
        ["--kind", "custom", "--slug", "acme"],
        r"A custom channel needs --secret",
        id="custom-no-secret",
    ),
    pytest.param(
        ["--kind", "bigcommerce", "--slug", "acme", "--secret", "x"],
        r"A bigcommerce channel needs --api-url to pull orders from",
        id="bigcommerce-no-url",
    ),
    pytest.param(
        ["--kind", "amazon", "--slug", "acme"],
        r"An amazon channel needs --api-url",
        id="amazon-no-url",
    ),
    pytest.param(
        ["--kind", "custom", "--slug", "acme", "--secret", "x", "--credentials", "{nope"],
        r"--credentials is not valid JSON: ",
        id="credentials-not-json",
    ),
    pytest.param(
        ["--kind", "custom", "--slug", "acme", "--secret", "x", "--credentials", '["a", "b"]'],
        r"--credentials must be a JSON object",
        id="credentials-not-an-object",
    ),
    pytest.param(
        ["--kind", "custom", "--slug", "acme", "--secret", "x", "--credentials", "@/no/such.json"],
        r"Cannot read /no/such.json: No such file or directory",
        id="credentials-file-missing",
    ),
    pytest.param(
        ["--kind", "custom", "--slug", "acme", "--secret", "x", "--auth-header", "X-Token"],
        r"--auth-header must look like NAME:VALUE",
        id="auth-header-no-colon",
    ),
    pytest.param(
        ["--kind", "custom", "--slug", "acme", "--secret", "x", "--auth-header", ":value"],
        r"--auth-header must look like NAME:VALUE",
        id="auth-header-no-name",
    ),
    pytest.param(
        ["--kind", "custom", "--slug", "acme", "--secret", "x", "--auth-header", "X-Token:  "],
        r"--auth-header must look like NAME:VALUE",
        id="auth-header-no-value",
    ),
    pytest.param(
        ["--kind", "ebay", "--slug", "acme", "--secret", "x"],
        r"argument --kind: invalid choice: 'ebay'",
        id="unknown-kind",
    ),
    pytest.param(
        ["--kind", "custom", "--slug", "acme", "--secret", "x", "--rounding", "HALF_UP"],
        r"argument --rounding: invalid choice: 'HALF_UP'",
        id="unknown-rounding",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_ADD_CHANNEL)
def test_add_channel_refuses_bad_input_with_a_clear_message_and_changes_nothing(
    existing_shop, args, message
):
    before = channels_state()

    error = fails("add_channel", *args)

    assert re.search(message, str(error)), str(error)
    assert "Traceback" not in str(error)
    assert channels_state() == before


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(["--currency", "EURO"], id="currency"),
        pytest.param(["--credentials", "{broken"], id="credentials"),
        pytest.param(["--auth-header", "no-colon-here"], id="auth-header"),
    ],
)
def test_add_channel_failed_update_applies_none_of_the_other_changes(existing_shop, bad):
    before = channels_state()

    fails(
        "add_channel", "--kind", "shopify", "--slug", "existing", "--name", "Renamed",
        "--secret", "new-secret", "--api-version", "2027-01", *bad,
    )  # fmt: skip

    assert channels_state() == before


def test_add_channel_refuses_an_api_url_that_is_not_an_http_url(db):
    """An Amazon/BigCommerce channel pulls orders from --api-url: a typo must be refused at once,
    not stored to fail every poll later."""
    error = fails(
        "add_channel", "--kind", "amazon", "--slug", "amzn", "--api-url", "sellingpartnerapi na"
    )

    assert "--api-url" in str(error)
    assert not SalesChannel.objects.exists()


# =================================================================================================
# import_products
# =================================================================================================
HEADER = "sku,title,weight,hs_code,origin_country,tags\n"


def write_csv(tmp_path: Path, text: str, *, name: str = "products.csv", encoding="utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def products() -> dict[str, dict[str, Any]]:
    return {
        p["sku"]: {k: v for k, v in p.items() if k not in ("id", "sku")}
        for p in Product.objects.values()
    }


def test_import_products_imports_good_rows_reports_every_bad_row_by_line_and_exits_1(db, tmp_path):
    path = write_csv(
        tmp_path,
        HEADER
        + "MUG-RED,Red mug,350,6912.00.10,cn,Kitchen; Red|red\n"  # line 2: good
        + ",No sku,100,,,\n"  # line 3
        + "TEE-L,,200,,,\n"  # line 4
        + "BAG-1,Bag,12.5,,,\n"  # line 5
        + "BAG-2,Bag,-3,,,\n"  # line 6
        + "BAG-3,Bag,,,USA,\n"  # line 7
        + "BAG-4,Bag,,12,,\n"  # line 8
        + "MUG-RED,Red mug again,,,,\n"  # line 9
        + "TEE-M,T-shirt M,180,610910,PT,apparel\n"  # line 10: good
        + f"{'X' * 101},Long sku,,,,\n",  # line 11
    )

    result = run("import_products", path)

    assert result.code == 1
    assert result.err.splitlines() == [
        "line 3: sku is empty",
        "line 4: title is empty for sku TEE-L",
        "line 5: weight '12.5' is not a whole number of grams",
        "line 6: weight '-3' is not a whole number of grams",
        "line 7: origin_country 'USA' is not an ISO 3166-1 alpha-2 code",
        "line 8: hs_code '12' must be 6 to 10 digits",
        "line 9: duplicate sku (first on line 2)",
        "line 11: sku is longer than 100 characters",
    ]
    assert "Imported 2 product(s) (2 new, 0 updated); rejected 8 row(s)." in result.out
    assert products() == {
        "MUG-RED": {"title": "Red mug", "weight_grams": 350, "hs_code": "69120010",
                    "origin_country": "CN", "tags": ["kitchen", "red"], "is_active": True},
        "TEE-M": {"title": "T-shirt M", "weight_grams": 180, "hs_code": "610910",
                  "origin_country": "PT", "tags": ["apparel"], "is_active": True},
    }  # fmt: skip


def test_import_products_parses_tags_split_by_bar_or_semicolon_trimmed_lowercased_unique(
    db, tmp_path
):
    path = write_csv(
        tmp_path,
        HEADER + 'MUG,Mug,,,," Gift | KITCHEN;gift;; ceramic |"\nTEE,Tee,,,,\n',
    )

    assert run("import_products", path).code == 0

    assert Product.objects.get(sku="MUG").tags == ["ceramic", "gift", "kitchen"]
    assert Product.objects.get(sku="TEE").tags == []


def test_import_products_dry_run_changes_nothing(db, tmp_path):
    Product.objects.create(sku="MUG", title="Old title", weight_grams=1)
    path = write_csv(tmp_path, HEADER + "MUG,New title,300,,,\nTEE,Tee,200,,,\n")
    before = products()

    result = run("import_products", path, "--dry-run")

    assert result.code == 0
    assert result.out.startswith("Dry run: would import 2 product(s)")
    assert products() == before


def test_import_products_dry_run_still_reports_bad_rows_and_exits_1(db, tmp_path):
    path = write_csv(tmp_path, HEADER + "MUG,Mug,heavy,,,\nTEE,Tee,,,,\n")

    result = run("import_products", path, "--dry-run")

    assert result.code == 1
    assert result.err.splitlines() == ["line 2: weight 'heavy' is not a whole number of grams"]
    assert not Product.objects.exists()


def test_import_products_dry_run_says_how_many_would_be_new_and_updated(db, tmp_path):
    """A dry run is how an operator previews an import: it must count what it would do."""
    Product.objects.create(sku="MUG", title="Old title")
    path = write_csv(tmp_path, HEADER + "MUG,New title,,,,\nTEE,Tee,,,,\nCAP,Cap,,,,\n")

    result = run("import_products", path, "--dry-run")

    assert "would import 3 product(s) (2 new, 1 updated)" in result.out
    assert Product.objects.count() == 1


def test_import_products_run_again_updates_instead_of_duplicating(db, tmp_path):
    first = write_csv(tmp_path, HEADER + "MUG,Mug,300,,CN,kitchen\nTEE,Tee,,,,\n", name="a.csv")
    assert run("import_products", first).code == 0
    ids = dict(Product.objects.values_list("sku", "pk"))
    again = run("import_products", first)
    assert again.code == 0
    assert "Imported 2 product(s) (0 new, 2 updated)" in again.out
    assert dict(Product.objects.values_list("sku", "pk")) == ids

    second = write_csv(tmp_path, HEADER + "MUG,Red mug,320,,CN,kitchen|red\nCAP,Cap,,,,\n",
                       name="b.csv")  # fmt: skip
    result = run("import_products", second)

    assert result.code == 0
    assert "Imported 2 product(s) (1 new, 1 updated); rejected 0 row(s)." in result.out
    assert Product.objects.count() == 3
    mug = Product.objects.get(sku="MUG")
    assert (mug.pk, mug.title, mug.weight_grams, mug.tags) == (
        ids["MUG"], "Red mug", 320, ["kitchen", "red"]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        pytest.param("code,title,weight\nMUG,Mug,1\n", "sku", id="no-sku"),
        pytest.param("sku,name\nMUG,Mug\n", "title", id="no-title"),
        pytest.param("sku;title;weight\nMUG;Mug;1\n", "sku, title", id="wrong-delimiter"),
        pytest.param("", "sku, title", id="empty-file"),
    ],
)
def test_import_products_without_a_required_header_column_is_refused(db, tmp_path, text, missing):
    path = write_csv(tmp_path, text)

    error = fails("import_products", path)

    assert f"header must include {missing}" in str(error)
    assert "expected columns: sku,title,weight,hs_code,origin_country,tags" in str(error)
    assert not Product.objects.exists()


def test_import_products_of_a_missing_file_is_refused(db, tmp_path):
    error = fails("import_products", str(tmp_path / "nope.csv"))

    assert re.fullmatch(r"Cannot read .*nope\.csv: No such file or directory", str(error))


def test_import_products_accepts_a_file_with_a_byte_order_mark(db, tmp_path):
    # Excel's "CSV UTF-8" starts the file with a BOM; the first column must still be `sku`.
    path = write_csv(tmp_path, HEADER + "CAFÉ-1,Café crème,250,,FR,\n", encoding="utf-8-sig")
    assert Path(path).read_bytes().startswith(b"\xef\xbb\xbfsku,")

    result = run("import_products", path)

    assert result.code == 0, result.err
    product = Product.objects.get()
    assert (product.sku, product.title, product.origin_country) == ("CAFÉ-1", "Café crème", "FR")


def test_import_products_of_a_file_that_is_not_utf8_is_refused_with_a_clear_message(db, tmp_path):
    # Excel's plain "CSV" on Windows writes cp1252: the command must say so, not crash.
    path = write_csv(tmp_path, HEADER + "CAFE-1,Café crème,250,,FR,\n", encoding="cp1252")

    error = fails("import_products", path)

    assert "UTF-8" in str(error)
    assert not Product.objects.exists()


def test_import_products_reports_the_physical_line_of_a_bad_row(db, tmp_path):
    """Line numbers are for finding the row in an editor: a quoted title spanning two lines or
    a blank line must not shift the numbers of the rows after it."""
    path = write_csv(
        tmp_path,
        HEADER
        + 'MUG,"Red mug\nwith a handle",300,,,\n'  # lines 2-3
        + "\n"  # line 4: blank
        + "TEE,Tee,light,,,\n",  # line 5
    )

    result = run("import_products", path)

    assert result.code == 1
    assert result.err.splitlines() == ["line 5: weight 'light' is not a whole number of grams"]
    assert Product.objects.get().title == "Red mug\nwith a handle"


def test_import_products_rejects_a_weight_the_database_cannot_hold(db, tmp_path):
    """100 million kg does not fit the weight column (PostgreSQL refuses it, SQLite stores it):
    the row is reported like any other bad row and the good rows still go in."""
    path = write_csv(tmp_path, HEADER + "MUG,Mug,300,,,\nCRATE,Crate,99999999999,,,\n")

    result = run("import_products", path)

    assert result.code == 1
    assert result.err.startswith("line 3: weight")
    assert list(Product.objects.values_list("sku", flat=True)) == ["MUG"]


# =================================================================================================
# ingest_file
# =================================================================================================
@pytest.fixture
def shop(db) -> SalesChannel:
    return SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug="shop", webhook_secret=SECRET)


@pytest.mark.parametrize(
    ("kind", "sample", "external_id", "currency"),
    [
        pytest.param(ChannelKind.SHOPIFY, SHOPIFY_GET, "450789469", "USD", id="shopify-usd"),
        pytest.param(ChannelKind.SHOPIFY, SHOPIFY_EUR, "1073459976", "EUR", id="shopify-eur"),
        pytest.param(ChannelKind.WOOCOMMERCE, WOO_ORDER, "727", "USD", id="woocommerce"),
    ],
)
def test_ingest_file_creates_the_order_from_a_vendor_sample(
    db, kind, sample, external_id, currency
):
    channel = SalesChannelFactory(kind=kind, slug="store", webhook_secret=SECRET)

    result = run("ingest_file", "--channel", "store", str(sample))

    assert result.code == 0, result.err
    event = InboundEvent.objects.get()
    order = Order.objects.get()
    assert (event.channel_id, event.source, event.status, event.outcome) == (
        channel.pk, "file", "processed", "created"
    )  # fmt: skip
    assert event.order_id == order.pk
    assert (order.channel_id, order.external_id, order.currency) == (
        channel.pk, external_id, currency
    )  # fmt: skip
    assert result.out.strip() == (
        f"{sample.name}: event {event.pk} processed, order #{order.pk} created"
    )
    assert result.err == ""


def test_ingest_file_unwraps_a_shopify_rest_response_to_the_webhook_body(shop):
    wrapped = json.loads(SHOPIFY_GET.read_bytes())
    assert list(wrapped) == ["order"]

    assert run("ingest_file", "--channel", "shop", str(SHOPIFY_GET)).code == 0

    event = InboundEvent.objects.get()
    assert event.topic == "orders/create"
    assert json.loads(bytes(event.raw_body)) == wrapped["order"]


def test_ingest_file_run_twice_says_already_imported_and_changes_nothing(shop):
    assert run("ingest_file", "--channel", "shop", str(SHOPIFY_GET)).code == 0
    order = Order.objects.get()
    before = (InboundEvent.objects.get().attempts, order.events.count(), Incident.objects.count())

    again = run("ingest_file", "--channel", "shop", str(SHOPIFY_GET))

    assert again.code == 0
    event_id = InboundEvent.objects.get().pk
    assert again.out.strip() == (
        f"{SHOPIFY_GET.name}: already imported as event {event_id} (processed), nothing to do"
    )
    assert InboundEvent.objects.count() == 1 and Order.objects.count() == 1
    assert (
        InboundEvent.objects.get().attempts,
        order.events.count(),
        Incident.objects.count(),
    ) == (before)


def test_ingest_file_of_a_truncated_file_ends_quarantined_with_exit_1_and_the_error(shop, tmp_path):
    broken = tmp_path / "order_cut_off.json"
    broken.write_bytes(SHOPIFY_GET.read_bytes()[:300])  # a download that was cut off

    result = run("ingest_file", "--channel", "shop", str(broken))

    assert result.code == 1
    event = InboundEvent.objects.get()
    assert event.status == "quarantined"
    assert bytes(event.raw_body) == broken.read_bytes()
    assert result.err.splitlines() == [
        f"order_cut_off.json: event {event.pk} quarantined (fix, then replay_event)",
        "  (body): the body is not valid JSON at line 1 column 300",
    ]
    assert not Order.objects.exists()
    assert Incident.objects.get().category == "schema_invalid"


def test_ingest_file_of_a_vendor_file_that_is_not_an_order_is_quarantined_each_problem_once(shop):
    result = run("ingest_file", "--channel", "shop", str(SHOPIFY_PAYOUT))

    assert result.code == 1
    event = InboundEvent.objects.get()
    assert event.status == "quarantined"
    problems = result.err.splitlines()[1:]
    assert problems and all(line.startswith("  (body): missing required field(s): ") for line in
                            problems)  # fmt: skip
    assert "line_items" in problems[0]
    # A person reads this list: the same problem must not be listed over and over.
    assert len(problems) == len(set(problems)), problems
    assert len(event.errors) == len({(e["pointer"], e["message"]) for e in event.errors})
    assert not Order.objects.exists()


def test_ingest_file_run_twice_on_a_quarantined_file_still_reports_it_and_exits_1(shop, tmp_path):
    """Running a backfill script again must not turn a quarantined file into a success."""
    broken = tmp_path / "order_cut_off.json"
    broken.write_bytes(SHOPIFY_GET.read_bytes()[:300])
    assert run("ingest_file", "--channel", "shop", str(broken)).code == 1

    again = run("ingest_file", "--channel", "shop", str(broken))

    assert again.code == 1
    assert "quarantined" in again.err
    assert InboundEvent.objects.count() == 1


def test_ingest_file_for_a_channel_with_a_broken_rounding_rule_quarantines_the_event(shop):
    """A channel setting that makes normalizing impossible must quarantine the event with a
    readable error (to be fixed and replayed), not crash the command and leave it 'received'."""
    SalesChannel.objects.filter(pk=shop.pk).update(rounding="HALF_UP")

    result = run("ingest_file", "--channel", "shop", str(SHOPIFY_GET))

    assert result.code == 1
    event = InboundEvent.objects.get()
    assert event.status == "quarantined"
    assert "rounding" in result.err and "HALF_UP" in result.err
    assert not Order.objects.exists()


def test_ingest_file_with_queue_leaves_the_event_to_the_worker(shop):
    result = run("ingest_file", "--channel", "shop", str(SHOPIFY_GET), "--queue")

    assert result.code == 0
    event = InboundEvent.objects.get()
    assert event.status == "received"
    assert result.out.strip() == f"{SHOPIFY_GET.name}: event {event.pk} received"
    assert not Order.objects.exists()


def test_ingest_file_for_an_unknown_channel_is_refused(shop):
    error = fails("ingest_file", "--channel", "no-such-shop", str(SHOPIFY_GET))

    assert str(error) == "No channel 'no-such-shop' (see add_channel)"
    assert not InboundEvent.objects.exists()


def test_ingest_file_of_a_missing_file_is_refused(shop, tmp_path):
    error = fails("ingest_file", "--channel", "shop", str(tmp_path / "missing.json"))

    assert re.fullmatch(r"Cannot read .*missing\.json: No such file or directory", str(error))
    assert not InboundEvent.objects.exists()


# =================================================================================================
# replay_event
# =================================================================================================
STOREFRONT_ORDER = {
    "schema_version": 1,
    "external_id": "W-2001",
    "order_number": "#2001",
    "currency": "USD",
    "placed_at": "2026-11-02T09:30:00+00:00",
    "updated_at": "2026-11-02T10:00:00+00:00",
    "financial_status": "pending",
    "payment_method": "card",
    "customer": {"external_id": "C-1", "email": "buyer@example.com", "name": "A Buyer"},
    "shipping_address": {"line1": "1 Main St", "city": "Springfield", "country_code": "US"},
    "lines": [
        {
            "external_line_id": "L1",
            "channel_sku": "MUG-RED",
            "title": "Red mug",
            "quantity": 2,
            "unit_price": "12.50",
            "discount": "0.00",
            "tax": "2.00",
        },
    ],  # fmt: skip
    "subtotal": "25.00",
    "discount_total": "0.00",
    "shipping_total": "5.00",
    "tax_total": "2.00",
    "total": "32.00",
}


@pytest.fixture
def storefront(db) -> SalesChannel:
    """A custom storefront whose rounding rule was mistyped: its orders are quarantined."""
    Product.objects.create(sku="MUG-RED", title="Red mug")
    channel = SalesChannelFactory(kind=ChannelKind.CUSTOM, slug="acme", webhook_secret=SECRET)
    SalesChannel.objects.filter(pk=channel.pk).update(rounding="HALF_UP")
    return channel


def file_event(channel: SalesChannel, body: bytes, topic: str = "order.created") -> InboundEvent:
    """An event imported from a file and processed once (as ``ingest_file`` does)."""
    event, created = inbound_event_ingest_file(channel=channel, body=body, topic=topic)
    assert created and event is not None
    inbound_event_process(event_id=event.pk)
    event.refresh_from_db()
    return event


def storefront_body(event_id: str = "evt-1") -> bytes:
    return json.dumps(
        {"id": event_id, "topic": "order.created", "order": STOREFRONT_ORDER}
    ).encode()


def fix_rounding(channel: SalesChannel) -> None:
    SalesChannel.objects.filter(pk=channel.pk).update(rounding="ROUND_HALF_UP")


def test_replay_event_that_still_fails_exits_1_with_its_errors_on_stderr(storefront):
    event = file_event(storefront, storefront_body())
    assert event.status == "quarantined"

    result = run("replay_event", str(event.pk))

    assert result.code == 1
    assert result.err.splitlines() == [
        f"Event {event.pk}: still quarantined",
        "  /order: Unknown rounding mode 'HALF_UP'",
    ]
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("quarantined", 2)
    assert not Order.objects.exists()


def test_replay_event_after_the_fix_replays_with_exit_0(storefront):
    event = file_event(storefront, storefront_body())
    fix_rounding(storefront)

    result = run("replay_event", str(event.pk))

    assert result.code == 0, result.err
    event.refresh_from_db()
    order = Order.objects.get()
    assert (event.status, event.outcome, event.order_id, event.errors) == (
        "replayed", "created", order.pk, []
    )  # fmt: skip
    assert (order.external_id, order.total) == ("W-2001", 32)
    assert result.out.strip() == f"Event {event.pk}: replayed, order #{order.pk} created"
    assert Incident.objects.get(category="schema_invalid").status == "resolved"


def test_replay_event_run_twice_replays_once(storefront):
    event = file_event(storefront, storefront_body())
    fix_rounding(storefront)
    assert run("replay_event", str(event.pk)).code == 0
    event.refresh_from_db()
    order_events = Order.objects.get().events.count()

    again = run("replay_event", str(event.pk))

    assert again.code == 0
    assert Order.objects.count() == 1
    fresh = InboundEvent.objects.get()
    assert (fresh.attempts, fresh.processed_at) == (event.attempts, event.processed_at)
    assert Order.objects.get().events.count() == order_events


def test_replay_event_run_again_says_there_was_nothing_to_replay(storefront):
    """The second run changes nothing, so it must not claim to have replayed the event again."""
    event = file_event(storefront, storefront_body())
    fix_rounding(storefront)
    assert run("replay_event", str(event.pk)).code == 0

    again = run("replay_event", str(event.pk))

    assert again.code == 0
    assert again.out.strip() == f"Event {event.pk}: replayed, nothing to replay"


def test_replay_event_of_a_processed_event_says_nothing_to_replay(shop):
    assert run("ingest_file", "--channel", "shop", str(SHOPIFY_GET)).code == 0
    event = InboundEvent.objects.get()

    result = run("replay_event", str(event.pk))

    assert result.code == 0
    assert result.out.strip() == f"Event {event.pk}: processed, nothing to replay"
    fresh = InboundEvent.objects.get()
    assert (fresh.status, fresh.attempts) == ("processed", event.attempts)


def test_replay_event_of_several_ids_reports_each_and_exits_1_if_one_still_fails(storefront):
    fixable = file_event(storefront, storefront_body("evt-ok"))
    broken = file_event(storefront, b'{"id": "evt-broken", "order": {')
    fix_rounding(storefront)

    result = run("replay_event", str(fixable.pk), str(broken.pk))

    assert result.code == 1
    assert f"Event {fixable.pk}: replayed" in result.out
    assert result.err.splitlines()[0] == f"Event {broken.pk}: still quarantined"
    assert "(body): the body is not valid JSON" in result.err
    fixable.refresh_from_db()
    broken.refresh_from_db()
    assert (fixable.status, broken.status) == ("replayed", "quarantined")


def test_replay_event_of_an_unknown_id_is_refused(db):
    error = fails("replay_event", "987654")

    assert str(error) == "Inbound event 987654 does not exist"


def test_replay_event_of_an_id_that_is_not_a_number_is_refused(db):
    error = fails("replay_event", "evt_1")

    assert "invalid int value: 'evt_1'" in str(error)


# =================================================================================================
# poll_channel
# =================================================================================================
ACCESS_TOKEN = "Atza|IwEBIExampleAccessToken"
NEXT_TOKEN = "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"  # the getOrders example's NextToken
PENDING_ID = "902-3159896-1390916"  # the example's order, LastUpdateDate 2017-01-20T19:49:35Z
SANDBOX_IDS = ("902-1845936-5435065", "902-8745147-1934268")
CURSOR = datetime(2016, 6, 1, tzinfo=UTC)


@pytest.fixture
def amazon_channel(db, httpserver: HTTPServer):
    channel = SalesChannelFactory(
        kind=ChannelKind.AMAZON, slug="amzn-us", api_base_url=httpserver.url_for("/").rstrip("/"),
        poll_cursor=CURSOR,
        credentials={
            "client_id": "amzn1.application-oa2-client.example", "client_secret": "lwa-secret",
            "refresh_token": "Atzr|IwEBIExampleRefreshToken",
            "lwa_token_url": httpserver.url_for("/auth/o2/token"),
            "marketplace_ids": ["ATVPDKIKX0DER"],
        },
    )  # fmt: skip
    amazon.forget_token(channel.pk)
    yield channel
    amazon.forget_token(channel.pk)


def serve_amazon(httpserver: HTTPServer) -> None:
    """LWA, then getOrders: the documented example (1 order, NextToken) and, for the NextToken,
    the sandbox page (2 orders); each order's items from the sandbox getOrderItems answer."""
    httpserver.expect_request("/auth/o2/token", method="POST").respond_with_json(
        {"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600}
    )
    auth = {"x-amz-access-token": ACCESS_TOKEN}
    # The NextToken page first: handlers are matched in the order they were registered.
    next_page = {"MarketplaceIds": "ATVPDKIKX0DER", "NextToken": NEXT_TOKEN}
    httpserver.expect_request(
        "/orders/v0/orders", headers=auth, query_string=next_page
    ).respond_with_data(AMAZON_ORDERS_SANDBOX.read_bytes(), content_type="application/json")
    httpserver.expect_request("/orders/v0/orders", headers=auth).respond_with_data(
        AMAZON_ORDERS_EXAMPLE.read_bytes(), content_type="application/json"
    )
    for order_id in (PENDING_ID, *SANDBOX_IDS):
        httpserver.expect_request(
            f"/orders/v0/orders/{order_id}/orderItems", headers=auth
        ).respond_with_data(AMAZON_ITEMS_SANDBOX.read_bytes(), content_type="application/json")


def orders_queries(httpserver: HTTPServer) -> list[dict[str, str]]:
    return [r.args.to_dict() for r, _ in httpserver.log if r.path == "/orders/v0/orders"]


def test_poll_channel_stores_new_events_and_moves_the_cursor(amazon_channel, httpserver):
    serve_amazon(httpserver)

    result = run("poll_channel", "amzn-us")

    assert result.code == 0, result.err
    newest = datetime(2017, 1, 20, 19, 49, 35, tzinfo=UTC)
    assert result.out.strip() == (
        f"Polled amzn-us: 3 new, 0 unchanged; next poll from {newest.isoformat()}"
    )
    events = InboundEvent.objects.filter(channel=amazon_channel).order_by("pk")
    stored = [json.loads(bytes(e.raw_body))["order"]["AmazonOrderId"] for e in events]
    assert stored == [PENDING_ID, *SANDBOX_IDS]
    assert {(e.source, e.topic, e.status) for e in events} == {("poll", "orders/poll", "received")}
    channel = SalesChannel.objects.get(pk=amazon_channel.pk)
    assert channel.poll_cursor == newest
    assert channel.last_polled_at is not None
    assert orders_queries(httpserver)[0]["LastUpdatedAfter"] == "2016-06-01T00:00:00Z"


def test_poll_channel_run_again_reports_the_same_orders_unchanged_and_asks_from_the_cursor(
    amazon_channel, httpserver
):
    serve_amazon(httpserver)
    assert run("poll_channel", "amzn-us").code == 0
    events = list(InboundEvent.objects.values_list("pk", "dedup_key"))

    again = run("poll_channel", "amzn-us")

    assert again.code == 0
    assert "Polled amzn-us: 0 new, 3 unchanged; next poll from 2017-01-20T19:49:35+00:00" in (
        again.out
    )
    assert list(InboundEvent.objects.values_list("pk", "dedup_key")) == events
    assert sorted(InboundEvent.objects.values_list("duplicate_deliveries", flat=True)) == [1, 1, 1]
    first_pages = [q for q in orders_queries(httpserver) if "NextToken" not in q]
    assert [q["LastUpdatedAfter"] for q in first_pages] == [
        "2016-06-01T00:00:00Z", "2017-01-20T19:49:35Z",
    ]  # fmt: skip


def test_poll_channel_of_a_channel_that_pushes_is_refused(shop):
    error = fails("poll_channel", "shop")

    assert str(error) == "Polling shop failed: Channel shop (shopify) is not polled; it pushes"
    assert SalesChannel.objects.get(pk=shop.pk).last_polled_at is None


def test_poll_channel_of_an_unknown_channel_is_refused(db):
    error = fails("poll_channel", "no-such-channel")

    assert str(error) == "No channel 'no-such-channel'"


def test_poll_channel_when_amazon_answers_500_every_time_fails_and_keeps_the_cursor(
    amazon_channel, httpserver
):
    httpserver.expect_request(re.compile(r"^/.*")).respond_with_data("", status=500)

    error = fails("poll_channel", "amzn-us")

    assert str(error).startswith("Polling amzn-us failed: Amazon ")
    assert f"HTTP 500 from {httpserver.host}:{httpserver.port}/" in str(error)
    assert "lwa-secret" not in str(error) and "Atzr|" not in str(error)
    assert len(httpserver.log) == 5  # the first try and four retries, then it gives up
    channel = SalesChannel.objects.get(pk=amazon_channel.pk)
    assert (channel.poll_cursor, channel.last_polled_at) == (CURSOR, None)
    assert not InboundEvent.objects.exists()


def test_poll_channel_when_get_orders_answers_500_names_the_call_and_keeps_the_cursor(
    amazon_channel, httpserver
):
    httpserver.expect_request("/auth/o2/token", method="POST").respond_with_json(
        {"access_token": ACCESS_TOKEN, "expires_in": 3600}
    )
    httpserver.expect_request("/orders/v0/orders").respond_with_data("", status=500)

    error = fails("poll_channel", "amzn-us")

    assert str(error).startswith("Polling amzn-us failed: Amazon getOrders: HTTP 500 from ")
    assert str(error).endswith("/orders/v0/orders")  # no query string: it may carry tokens
    channel = SalesChannel.objects.get(pk=amazon_channel.pk)
    assert (channel.poll_cursor, channel.last_polled_at) == (CURSOR, None)
    assert not InboundEvent.objects.exists()
