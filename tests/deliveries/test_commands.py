from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from deployments.models import AuditEvent

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("webhook_secret", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()[-1]


def test_prints_and_rotates_the_secret(deployment):
    assert run(deployment.slug) == deployment.webhook_secret
    new = run(deployment.slug, "--rotate")
    deployment.refresh_from_db()
    assert new == deployment.webhook_secret != "" and new.startswith("whsec_")
    assert AuditEvent.objects.get(verb="deployments.webhook_secret.rotated").actor_label == "manage.py"
    with pytest.raises(CommandError):
        run("no-such-deployment")
