from django.contrib import admin

from deployments.admin import ReadOnlyAdmin
from integrations.models import SlackInteraction, SlackMessage, SlackUser


@admin.register(SlackUser)
class SlackUserAdmin(ReadOnlyAdmin):
    """Links are made with `manage.py link_slack` (audited); the admin lists them."""

    list_display = ["slack_user_id", "user", "linked_at"]
    search_fields = ["slack_user_id", "user__username"]


@admin.register(SlackMessage)
class SlackMessageAdmin(ReadOnlyAdmin):
    list_display = ["kind", "deployment", "action", "channel", "ts", "shown_status", "created_at"]
    list_filter = ["kind"]


@admin.register(SlackInteraction)
class SlackInteractionAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "slack_user_id", "digest"]
