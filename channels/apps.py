from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    label = "channels"
    verbose_name = "Sales channels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from channels import checks, tasks  # noqa: F401  (tasks: registers the Celery tasks)
        from orders.validation import register

        register(checks.SkuMappedCheck())
