from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = "Finance reconciliation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orders import figures
        from reconciliation.variance import kpi_variance

        figures.register_variance(kpi_variance)  # the KPIs and the weekly summary read it
