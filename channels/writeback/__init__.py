"""Tracking write-back to the sales channels (``orders.feedback``), one module per channel kind."""
