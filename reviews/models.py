"""Reviews: the high-risk review queue and incident trends (builds on ``orders.Incident``)."""
