from django.contrib import admin
from django.db import transaction

from deployments.models import ApiKey, AuditEvent, Deployment, Member, PromotionRequest
from deployments.services import audit_event_record
from deployments.settings_changes import GOVERNED


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services (audited); the admin shows them."""

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "stage", "paused", "breaker_tripped_at"]
    search_fields = ["slug", "name"]
    # Stage, pause and breaker change only through the promotion workflow and its audit trail.
    readonly_fields = [
        "stage",
        "stage_entered_at",
        "paused",
        "breaker_tripped_at",
        "breaker_reason",
        "breaker_reset_at",
        "stage_caps_entered_at",
        "webhook_secret",
        # Governed settings change on the settings page, four-eyes when they lower oversight
        # (deployments.settings_changes); a cap also by demotion or promotion.
        *GOVERNED,
    ]

    @transaction.atomic
    def save_model(self, request, obj, form, change) -> None:
        """Threshold, gate-criteria, breaker and blast-radius changes are audited with their
        old and new values."""
        before = Deployment.objects.filter(pk=obj.pk).values(*form.changed_data).first() if change else None
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            audit_event_record(
                verb="deployments.deployment.changed",
                actor=request.user,
                deployment=obj,
                obj=obj,
                data={
                    name: {"from": str(before.get(name)), "to": str(getattr(obj, name))} for name in form.changed_data
                },
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "deployment", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "hashed_key", "created_at", "created_by", "last_used_at"]

    def has_add_permission(self, request) -> bool:
        return False  # keys are created with `manage.py create_api_key` so the raw key is shown once


@admin.register(Member)
class MemberAdmin(admin.ModelAdmin):
    list_display = ["user", "role"]
    filter_horizontal = ["deployments"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "verb", "deployment", "object_type", "object_id"]
    list_filter = ["verb"]


@admin.register(PromotionRequest)
class PromotionRequestAdmin(ReadOnlyAdmin):
    """Read-only: requests are made and decided on the gate page (four-eyes, audited)."""

    list_display = ["requested_at", "deployment", "action_type", "from_stage", "to_stage", "status", "requested_by"]
    list_filter = ["status"]
