from django.urls import include, path

from reviews.shadow import views

app_name = "shadow"

# Under deployments/<slug>/shadow/: the report and what it lists ...
pages = [
    path("", views.shadow_report, name="report"),
    path("disagreements/", views.shadow_disagreements, name="disagreements"),
    path("rules/", views.shadow_rules, name="rules"),
]
# ... a person's verdict on one disagreement, and re-running the comparison under new rules.
changes = [
    path("actions/<int:action_id>/adjudicate", views.shadow_adjudicate, name="adjudicate"),
    path("recompute/", views.shadow_recompute_start, name="recompute"),
    path("recompute/<int:recompute_id>/", views.shadow_recompute_progress, name="recompute_progress"),
]

urlpatterns = [path("deployments/<slug:slug>/shadow/", include(pages + changes))]
