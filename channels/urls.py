from django.urls import path

from channels.views import webhook

urlpatterns = [path("<slug:slug>/", webhook, name="webhook")]
