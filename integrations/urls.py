from django.urls import path

from integrations.slack import views

app_name = "integrations"

urlpatterns = [
    path("integrations/slack/interactions", views.slack_interactions, name="slack_interactions"),
]
