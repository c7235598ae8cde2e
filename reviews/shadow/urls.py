from django.urls import path

from reviews.shadow import views

app_name = "shadow"

urlpatterns = [
    path("deployments/<slug:slug>/shadow/", views.shadow_report, name="report"),
    path("deployments/<slug:slug>/shadow/disagreements/", views.shadow_disagreements, name="disagreements"),
    path(
        "deployments/<slug:slug>/shadow/actions/<int:action_id>/adjudicate",
        views.shadow_adjudicate,
        name="adjudicate",
    ),
    path("deployments/<slug:slug>/shadow/rules/", views.shadow_rules, name="rules"),
    path("deployments/<slug:slug>/shadow/recompute/", views.shadow_recompute_start, name="recompute"),
    path(
        "deployments/<slug:slug>/shadow/recompute/<int:recompute_id>/",
        views.shadow_recompute_progress,
        name="recompute_progress",
    ),
]
