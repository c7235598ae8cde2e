from django.core.management.base import BaseCommand, CommandError

from deployments.errors import InvalidInput
from deployments.models import Deployment
from deployments.scopes import ALL, DEFAULT
from deployments.services import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for a deployment. The key is printed once, alone on the last line. "
        "--scope (repeatable): propose (the agent: actions, results, its deployment; the default) "
        "or outcomes (the system of record: what humans did)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--scope", action="append", choices=ALL, dest="scopes")

    def handle(self, *args, slug: str, name: str, scopes: list[str] | None, **options) -> None:
        deployment = Deployment.objects.filter(slug=slug).first()
        if deployment is None:
            raise CommandError(f"no deployment {slug!r}")
        try:
            key, raw = api_key_create(deployment=deployment, name=name, scopes=scopes or DEFAULT)
        except InvalidInput as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(
            f"API key {key.prefix}… for {slug} (scopes: {', '.join(key.scopes)}); store it now, it is not shown again:"
        )
        if len(key.scopes) > 1:
            self.stderr.write(
                "Warning: this key may both propose and report outcomes; the agent could grade its own work."
            )
        self.stdout.write(raw)
