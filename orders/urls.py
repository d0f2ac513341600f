from django.urls import path

from orders.views import privacy_export_download

urlpatterns = [
    path("<str:name>", privacy_export_download, name="privacy-export"),
]
