from django.core.management.base import BaseCommand, CommandError

from deliveries.services import deployment_webhook_secret_rotate
from deployments.models import Deployment


class Command(BaseCommand):
    help = (
        "Print a deployment's webhook signing secret (whsec_...), alone on the last line. "
        "--rotate makes a new one first (audited; the old one keeps signing for 24 hours)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--rotate", action="store_true")

    def handle(self, *args, slug: str, rotate: bool, **options) -> None:
        deployment = Deployment.objects.filter(slug=slug).first()
        if deployment is None:
            raise CommandError(f"no deployment {slug!r}")
        secret = deployment.webhook_secret
        if rotate or not secret:
            secret = deployment_webhook_secret_rotate(deployment_id=deployment.pk, actor_label="manage.py")
            self.stderr.write(f"New webhook signing secret for {slug}:")
        self.stdout.write(secret)
