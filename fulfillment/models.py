"""Fulfillment: warehouses, stock and reservations, routing, shipments and the outbox.

Arrives with the validation and orchestration issues; the app is installed now so that its
migrations, permissions and admin slot into the project from the start.
"""
