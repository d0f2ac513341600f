from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    label = "channels"
    verbose_name = "Sales channels"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from channels import checks, privacy, tasks  # noqa: F401  (tasks: the Celery tasks)
        from orders.validation import register

        register(checks.SkuMappedCheck())
        privacy.register()  # inbox events in privacy exports and redactions
