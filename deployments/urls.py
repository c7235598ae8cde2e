from django.urls import path

from deployments import calibration_views, delegation_views, reviewer_views, settings_views, views

app_name = "deployments"

urlpatterns = [
    path("deployments/", views.deployment_list, name="list"),
    path("deployments/<slug:slug>/", views.deployment_detail, name="detail"),
    path("deployments/<slug:slug>/gate/", views.deployment_gate, name="gate"),
    path("deployments/<slug:slug>/calibration/", calibration_views.deployment_calibration, name="calibration"),
    path("deployments/<slug:slug>/reviewers/", reviewer_views.reviewer_quality, name="reviewers"),
    path("deployments/<slug:slug>/gate/request", views.promotion_request_create, name="promotion_request"),
    path(
        "deployments/<slug:slug>/gate/requests/<int:request_id>/decide",
        views.promotion_request_decide,
        name="promotion_decide",
    ),
    path("deployments/<slug:slug>/demote", views.deployment_demote, name="demote"),
    path("deployments/<slug:slug>/pause", views.deployment_pause, name="pause"),
    path("deployments/<slug:slug>/resume", views.deployment_resume, name="resume"),
    path("deployments/<slug:slug>/breaker/reset", views.breaker_reset, name="breaker_reset"),
    path("deployments/<slug:slug>/calibration/", calibration_views.deployment_calibration, name="calibration"),
    path("deployments/<slug:slug>/settings/", settings_views.deployment_settings, name="settings"),
    path("deployments/<slug:slug>/changes/<int:change_id>/", settings_views.settings_change_detail, name="change"),
    path(
        "deployments/<slug:slug>/changes/<int:change_id>/approve",
        settings_views.settings_change_approve_view,
        name="change_approve",
    ),
    path(
        "deployments/<slug:slug>/changes/<int:change_id>/reject",
        settings_views.settings_change_reject_view,
        name="change_reject",
    ),
    path("audit/", views.audit_log, name="audit_log"),
    path("account/away/", delegation_views.away, name="away"),
    path("account/away/<int:delegation_id>/cancel", delegation_views.away_cancel, name="away_cancel"),
]
