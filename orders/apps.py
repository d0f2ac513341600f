from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from config import checks  # noqa: F401  (registers our `check --deploy` checks)
        from orders import tasks  # noqa: F401  (registers the Celery tasks)
        from orders.roles import sync_roles_after_migrate
        from orders.validation import register_builtin_checks

        register_builtin_checks()
        post_migrate.connect(sync_roles_after_migrate, sender=self, dispatch_uid="orders.roles")
