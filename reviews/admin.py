from django.contrib import admin

from reviews.models import Decision, ProposedAction


@admin.register(ProposedAction)
class ProposedActionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "deployment",
        "action_type",
        "status",
        "route",
        "risk_score",
        "confidence",
        "created_at",
    ]
    list_filter = ["status", "route"]
    list_select_related = ["deployment"]
    show_full_result_count = False  # no COUNT(*) over the whole table on large installs

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # transitions go through reviews.services only


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "verb", "actor"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False
