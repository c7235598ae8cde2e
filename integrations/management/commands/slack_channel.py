"""`manage.py slack_channel SLUG CHANNEL_ID` (or "" to stop): where a deployment's approvals go."""

from django.core.management.base import BaseCommand, CommandError

from deployments.errors import DomainError


class Command(BaseCommand):
    help = "Post a deployment's queue items, breaker trips and SLA warnings to a Slack channel (id C…)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("channel", help='The channel id (C…); "" stops posting.')

    def handle(self, *args, slug: str, channel: str, **options) -> None:
        from integrations.slack.services import deployment_slack_channel_set

        try:
            deployment = deployment_slack_channel_set(slug=slug, channel=channel)
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        where = deployment.slack_channel or "nowhere (Slack off)"
        self.stdout.write(f"{slug}: approvals are posted to {where}")
