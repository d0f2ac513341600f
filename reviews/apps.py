from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Reviews and incidents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orders import validation
        from reviews import privacy
        from reviews.fraud import FraudCheck
        from reviews.services import route_to_review

        # orders never imports reviews: the pipeline knows only these registrations.
        validation.set_review_router(route_to_review)
        validation.register(FraudCheck())
        privacy.register()  # review cases in privacy exports and redactions
