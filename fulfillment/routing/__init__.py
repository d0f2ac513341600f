"""Routing rules: which carrier, service level, warehouse, lane and flags an order gets, and why.

A ``RoutingRule`` holds ``conditions`` and ``actions`` as structured data validated by the JSON
Schema ``fulfillment/schemas/routing_rule.v1.json``. ``evaluate`` tries the active rules by
``(priority, id)``; every condition present must hold. The first matching rule decides, unless
its actions say ``continue``: then it applies what it sets, and lower-priority rules may still
set what is left (an earlier rule's value is never overwritten; each flag counts on its own).
What no rule sets comes from the defaults (settings ``ROUTING_DEFAULT_CARRIER``,
``ROUTING_DEFAULT_SERVICE_LEVEL``, ``ROUTING_DEFAULT_LANE``; no flags, no warehouse preference).

Every rule tried gets an explanation in plain words, one line per condition with the expected
and the actual value (``order total 1250.00 USD >= 1000.00 USD: yes``), so a person can see why
an order went where it went. ``evaluate`` never writes; ``route_order`` stores the outcome as a
``RoutingDecision`` and puts a ``routed`` event on the order's timeline.

The modules, in the order a decision is made: ``validation`` (the rule document's JSON Schema
and the checks it cannot express), ``facts`` (what an order looks like to a rule), ``conditions``
(one rule's conditions against the facts), ``evaluation`` (all rules, merged actions, customs
lines), ``explain`` (the "why" text: rules and outcomes in plain words), ``services``
(``route_order``: store the decision), ``admin`` (rule editing and the preview).
"""
