from django.urls import include, path

from deployments import calibration_views, delegation_views, reviewer_views, settings_views, views

app_name = "deployments"

# Under deployments/<slug>/: what a deployment's pages show ...
pages = [
    path("", views.deployment_detail, name="detail"),
    path("calibration/", calibration_views.deployment_calibration, name="calibration"),
    path("reviewers/", reviewer_views.reviewer_quality, name="reviewers"),
]
# ... its promotion gate (deployments.services.promotion) ...
gate = [
    path("gate/", views.deployment_gate, name="gate"),
    path("gate/request", views.promotion_request_create, name="promotion_request"),
    path("gate/requests/<int:request_id>/decide", views.promotion_request_decide, name="promotion_decide"),
]
# ... the controls that take effect at once ...
controls = [
    path("demote", views.deployment_demote, name="demote"),
    path("pause", views.deployment_pause, name="pause"),
    path("resume", views.deployment_resume, name="resume"),
    path("breaker/reset", views.breaker_reset, name="breaker_reset"),
]
# ... and the governed settings, changed through change requests (deployments.settings_changes).
settings = [
    path("settings/", settings_views.deployment_settings, name="settings"),
    path("changes/<int:change_id>/", settings_views.settings_change_detail, name="change"),
    path("changes/<int:change_id>/approve", settings_views.settings_change_approve_view, name="change_approve"),
    path("changes/<int:change_id>/reject", settings_views.settings_change_reject_view, name="change_reject"),
]
# A person's own out-of-office delegations (deployments.delegations).
away = [
    path("", delegation_views.away, name="away"),
    path("<int:delegation_id>/cancel", delegation_views.away_cancel, name="away_cancel"),
]

urlpatterns = [
    path("deployments/", views.deployment_list, name="list"),
    path("deployments/<slug:slug>/", include(pages + gate + controls + settings)),
    path("audit/", views.audit_log, name="audit_log"),
    path("account/away/", include(away)),
]
