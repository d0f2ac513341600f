"""Channel adapters by kind. Each module exposes ``adapter``, an object with the
``ChannelAdapter`` interface (see ``base.py``)."""

from __future__ import annotations

from importlib import import_module

from channels.adapters.base import ChannelAdapter

_MODULES = {
    "shopify": "channels.adapters.shopify",
    "woocommerce": "channels.adapters.woocommerce",
    "bigcommerce": "channels.adapters.bigcommerce",
    "amazon": "channels.adapters.amazon",
    "custom": "channels.adapters.custom",
}


def get_adapter(kind: str) -> ChannelAdapter:
    try:
        module = import_module(_MODULES[kind])
    except KeyError:
        raise ValueError(f"No adapter for channel kind {kind!r}") from None
    return module.adapter
