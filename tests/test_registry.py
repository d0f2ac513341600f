"""config.registry: the one shape of the adapter families' registries."""

from __future__ import annotations

import sys

import pytest

from config.registry import Registry, lazy


class Unknown(Exception):
    pass


def test_a_lazy_factory_imports_its_module_only_when_an_adapter_is_asked_for():
    sys.modules.pop("tests.registry_probe", None)
    family: Registry[str, object] = Registry("probe", missing=lambda name: Unknown(name))
    family.register("probe", lazy("tests.registry_probe", "Probe.build", call=True))

    assert "tests.registry_probe" not in sys.modules
    first, second = family.create("probe"), family.create("probe")

    assert "tests.registry_probe" in sys.modules
    assert type(first).__name__ == "Probe" and first is not second  # a new adapter per call


def test_an_unknown_name_raises_the_familys_own_error_and_names_are_kept_in_order():
    family: Registry[str, int] = Registry("numbers", missing=lambda name: Unknown(f"no {name}"))
    family.register("two", lambda: 2)
    family.register("one", lambda: 1)

    assert family.names() == ["two", "one"] and "one" in family and "three" not in family
    with pytest.raises(Unknown, match="no three"):
        family.create("three")
    assert family.unregister("one") is not None and family.names() == ["two"]


def test_the_families_answer_through_it():
    from channels.adapters import ADAPTERS, get_adapter
    from fulfillment.carriers import CARRIERS, CarrierNotConfigured, get_carrier
    from fulfillment.downstream import registered
    from orders.adapters import VERIFIERS

    assert ADAPTERS.names() == ["shopify", "woocommerce", "bigcommerce", "amazon", "custom"]
    assert get_adapter("shopify").kind == "shopify"
    assert VERIFIERS.names() == ["usps", "canadapost"]
    assert CARRIERS.names() == ["local", "easypost"] and get_carrier("local").code == "local"
    with pytest.raises(CarrierNotConfigured, match="known carriers are local, easypost"):
        get_carrier("pigeon")
    assert ("wms_task", "local") in registered() and ("label_purchase", "local") in registered()
