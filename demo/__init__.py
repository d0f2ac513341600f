"""The demo app: a new user's first look at the system, built through the real services."""
