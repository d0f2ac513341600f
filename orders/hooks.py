"""Side effects higher apps attach to order transitions, run inside the transition's own
transaction (database work only: releasing reservations when an order is cancelled, say).

``orders`` never imports the apps that register here; they do it from their ``ready()``.

Besides the transition names, ``RECEIVED`` fires when ``order_create`` has written a new order
(in its transaction, before the pipeline starts).

A hook that only acts on orders in some states says so with ``when``: a test of the order row
as the transition left it (locked, in the same transaction). ``fire`` then skips the hook for an
order that fails it, without the hook's own read of the row: orchestration hears every payment
capture, and most of them come while the order is still ``received``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orders.models import Order

Hook = Callable[[int], None]
When = Callable[["Order"], bool]
RECEIVED = "received"  # not a transition: the order was created
_HOOKS: dict[str, list[Hook]] = {}
_WHEN: dict[tuple[str, Hook], When] = {}


def on_transition(name: str, hook: Hook, *, when: When | None = None) -> None:
    """Call ``hook(order_id)`` whenever the order transition ``name`` is applied (and, with
    ``when``, the moved order passes it: see the module docstring)."""
    hooks = _HOOKS.setdefault(name, [])
    if hook not in hooks:
        hooks.append(hook)
    if when is None:
        _WHEN.pop((name, hook), None)
    else:
        _WHEN[(name, hook)] = when


def fire(name: str, order_id: int, *, order: Order | None = None) -> None:
    """Run the hooks of ``name``. ``order``: the row as the transition left it, which a hook's
    ``when`` is asked about; without it every hook runs (and reads what it needs itself)."""
    for hook in _HOOKS.get(name, []):
        when = _WHEN.get((name, hook))
        if when is not None and order is not None and not when(order):
            continue
        hook(order_id)
