from django.core.management.base import BaseCommand, CommandError

from deployments.models import Deployment, Member
from deployments.services import member_create


class Command(BaseCommand):
    help = "Create (or update) a person with a role, assigned to deployments."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[r.value for r in Member.Role])
        parser.add_argument("--deployment", action="append", default=[], metavar="SLUG")
        parser.add_argument("--password", default=None)
        parser.add_argument("--email", default="")

    def handle(self, *args, username: str, role: str, deployment: list[str], password, email, **options) -> None:
        deployments = list(Deployment.objects.filter(slug__in=deployment))
        missing = set(deployment) - {d.slug for d in deployments}
        if missing:
            raise CommandError(f"no deployment {', '.join(sorted(missing))}")
        member = member_create(username=username, role=role, password=password, deployments=deployments, email=email)
        slugs = ", ".join(d.slug for d in member.deployments.all()) or "none"
        self.stdout.write(f"{username}: {member.role}; deployments: {slugs}")
