from django.contrib import admin
from django.db import transaction

from deployments.models import ApiKey, AuditEvent, Deployment, Member, PromotionRequest
from deployments.services import api_key_revoke, audit_event_record


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
    """Only the name and description change here (audited). The stage, caps, thresholds, SLAs,
    criteria, breaker, blast radius, rate limit and kill switch are governed: they change only
    through the services behind the app's own pages (promotion four-eyes, demotion, pause,
    breaker reset, rules), which audit every change; none of them is editable here, so nobody
    lowers oversight around them. Deployments are created with `manage.py create_deployment`
    (audited) and never deleted (their actions and audit log hang off them)."""

    list_display = ["slug", "name", "stage", "paused", "breaker_tripped_at"]
    search_fields = ["slug", "name"]
    EDITABLE = ("name", "description")

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        return [f.name for f in Deployment._meta.concrete_fields if f.name not in self.EDITABLE]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @transaction.atomic
    def save_model(self, request, obj, form, change) -> None:
        """Name and description changes are audited with their old and new values."""
        before = Deployment.objects.filter(pk=obj.pk).values(*form.changed_data).first() if change else None
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            audit_event_record(
                verb="deployments.deployment.changed",
                actor=request.user,
                obj=obj,
                data={
                    name: {"from": str(before.get(name)), "to": str(getattr(obj, name))} for name in form.changed_data
                },
            )


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    """Read-only: a key's deployment, hash and revocation never change here (so revoked stays
    revoked and a key never moves to another deployment). Keys are created with `manage.py
    create_api_key` (the raw key is shown once); "Revoke selected keys" revokes through
    `api_key_revoke`, audited like every revocation."""

    list_display = ["prefix", "deployment", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["deployment"]
    actions = ["revoke_selected"]

    @admin.action(description="Revoke selected keys (audited)")
    def revoke_selected(self, request, queryset) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True))
        for key_id in keys:
            api_key_revoke(key_id=key_id, actor=request.user)
        self.message_user(request, f"Revoked {len(keys)} key(s).")


@admin.register(Member)
class MemberAdmin(ReadOnlyAdmin):
    """Read-only: roles and assignments change with `manage.py create_member` (the audited
    `member_create`), never around it."""

    list_display = ["user", "role"]
    list_filter = ["role"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "verb", "deployment", "object_type", "object_id"]
    list_filter = ["verb"]


@admin.register(PromotionRequest)
class PromotionRequestAdmin(ReadOnlyAdmin):
    """Read-only: requests are made and decided on the gate page (four-eyes, audited)."""

    list_display = ["requested_at", "deployment", "action_type", "from_stage", "to_stage", "status", "requested_by"]
    list_filter = ["status"]
