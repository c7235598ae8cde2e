from django.core.management.base import BaseCommand, CommandError

from deployments.errors import DomainError
from deployments.policy import STAGE_ORDER
from deployments.services import deployment_create


class Command(BaseCommand):
    help = "Create a deployment (in shadow mode unless --stage says otherwise; that is audited)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--stage", choices=[s.value for s in STAGE_ORDER], default="shadow")

    def handle(self, *args, slug: str, name: str, stage: str, **options) -> None:
        try:
            deployment = deployment_create(slug=slug, name=name, stage=stage, actor_label="manage.py")
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(f"Created deployment {deployment.slug} at stage {deployment.stage}")
