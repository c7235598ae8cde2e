from django.contrib import admin

from deliveries.models import Delivery, DeliveryAttempt


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started_at", "finished_at", "status_code", "latency_ms", "error", "response_excerpt"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Read-only: deliveries change through deliveries.services (redeliver on /deliveries/)."""

    list_display = ["created_at", "deployment", "event_type", "status", "attempts", "last_status_code", "url"]
    list_filter = ["status", "event_type"]
    list_select_related = ["deployment"]
    search_fields = ["webhook_id", "object_id"]
    inlines = [DeliveryAttemptInline]
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the outbox loses nothing: finished deliveries are purged by age (deliveries.purge)
