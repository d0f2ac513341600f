from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo: ``setup_demo``, its data builders, deliveries and loopback vendor sandbox.

    It sits above every other app (it builds a world out of all of them) and nothing imports it.
    """

    name = "demo"
    verbose_name = "Demo data"
    default_auto_field = "django.db.models.BigAutoField"
