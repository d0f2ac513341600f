"""The transactional outbox. ``services`` explains the whole mechanism in its docstring and holds
the writes (write, dispatch, retry, sweep, drain); ``breaker`` the circuit breaker per target;
``tasks`` the Celery entry points; ``admin`` and ``api`` the screens and the REST endpoints."""
