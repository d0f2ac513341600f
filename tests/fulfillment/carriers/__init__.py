"""Carrier tests share a few shipment requests (public addresses of public buildings)."""

from __future__ import annotations

from decimal import Decimal

from fulfillment.carriers.base import CustomsLine, ShipmentRequest

# The Ferry Building (San Francisco) ships; the White House and the Louvre receive.
WAREHOUSE = {
    "name": "SF Warehouse",
    "company": "Orderdesk Demo",
    "line1": "1 Ferry Building",
    "city": "San Francisco",
    "region_code": "CA",
    "postal_code": "94111",
    "country_code": "US",
}
WHITE_HOUSE = {
    "name": "Resident Occupant",
    "line1": "1600 Pennsylvania Ave NW",
    "city": "Washington",
    "region_code": "DC",
    "postal_code": "20500",
    "country_code": "US",
}
LOUVRE = {
    "name": "Musée du Louvre",
    "line1": "Rue de Rivoli",
    "city": "Paris",
    "postal_code": "75001",
    "country_code": "FR",
}
SHIRTS = CustomsLine(
    sku="TSHIRT-BLK-M",
    description="Cotton t-shirts",
    quantity=2,
    value=Decimal("23.25"),
    currency="USD",
    hs_code="610910",
    origin_country="PT",
    weight_grams=400,
)
MUGS = CustomsLine(
    sku="MUG-01",
    description="Ceramic mug",
    quantity=1,
    value=Decimal("12.00"),
    currency="USD",
    hs_code="691200",
    origin_country="CN",
    weight_grams=350,
)


def domestic(reference: str = "shipment-1", **changes: object) -> ShipmentRequest:
    fields: dict[str, object] = {
        "reference": reference,
        "ship_from": WAREHOUSE,
        "ship_to": WHITE_HOUSE,
        "weight_grams": 1200,
        "service_level": "ground",
        "correlation_id": "c-0123456789abcdef0123456789abcdef",
    }
    fields.update(changes)
    return ShipmentRequest(**fields)  # type: ignore[arg-type]


def international(reference: str = "shipment-2", **changes: object) -> ShipmentRequest:
    fields: dict[str, object] = {"ship_to": LOUVRE, "customs": [SHIRTS, MUGS]}
    fields.update(changes)
    return domestic(reference, **fields)
