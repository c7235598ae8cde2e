from django.core.management.base import BaseCommand, CommandError

from deployments.models import Deployment
from deployments.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a deployment. The key is printed once, alone on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")

    def handle(self, *args, slug: str, name: str, **options) -> None:
        deployment = Deployment.objects.filter(slug=slug).first()
        if deployment is None:
            raise CommandError(f"no deployment {slug!r}")
        key, raw = api_key_create(deployment=deployment, name=name)
        self.stderr.write(f"API key {key.prefix}… for {slug}; store it now, it is not shown again:")
        self.stdout.write(raw)
