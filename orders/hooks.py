"""Side effects higher apps attach to order transitions, run inside the transition's own
transaction (database work only: releasing reservations when an order is cancelled, say).

``orders`` never imports the apps that register here; they do it from their ``ready()``.

Besides the transition names, ``RECEIVED`` fires when ``order_create`` has written a new order
(in its transaction, before the pipeline starts).
"""

from __future__ import annotations

from collections.abc import Callable

Hook = Callable[[int], None]
RECEIVED = "received"  # not a transition: the order was created
_HOOKS: dict[str, list[Hook]] = {}


def on_transition(name: str, hook: Hook) -> None:
    """Call ``hook(order_id)`` whenever the order transition ``name`` is applied."""
    hooks = _HOOKS.setdefault(name, [])
    if hook not in hooks:
        hooks.append(hook)


def fire(name: str, order_id: int) -> None:
    for hook in _HOOKS.get(name, []):
        hook(order_id)
