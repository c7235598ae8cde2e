"""`manage.py link_slack USERNAME SLACK_USER_ID`: a Slack user acts as this member in Slack."""

from django.core.management.base import BaseCommand, CommandError

from deployments.errors import DomainError


class Command(BaseCommand):
    help = "Link a Slack user id (U…) to a Trustladder user, so their Slack clicks decide as that member."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("slack_user_id")

    def handle(self, *args, username: str, slack_user_id: str, **options) -> None:
        from integrations.slack.services import slack_user_link

        try:
            link = slack_user_link(username=username, slack_user_id=slack_user_id)
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(f"Slack user {link.slack_user_id} now acts as {username}")
