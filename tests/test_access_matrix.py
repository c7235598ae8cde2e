"""Access matrix built from the URL configuration itself.

Every URL pattern is collected from the resolver. A view is either on the short public list
below, or declares its minimum role with `deployments.permissions.role_required` (which sets
`view.required_role`). A new view with neither fails `test_every_view_declares_an_access_rule`.
Each declared view is then requested with GET and POST by every kind of user: anonymous, each
role, and a member of another deployment.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from deployments.models import Member
from deployments.permissions import ROLE_RANK
from tests.factories import DeploymentFactory, MemberFactory, ProposedActionFactory

# Views anyone may reach, and why.
PUBLIC = {
    "login": "Django's sign-in page",
    "logout": "signing out (POST only)",
    "healthz": "load balancer health check; reveals only up/down",
    "home": "login_required; only redirects a member to their queue (checked in tests/reviews)",
    "docs": "login_required; the project's own docs (docs/*.md), nothing of any deployment",
    "metrics": "guarded by its own token / network rule (tests/test_operations.py)",
    "integrations:slack_interactions": "Slack's signed requests; the signature and the linked member's role "
    "are checked (tests/integrations/test_slack.py)",
}
# Mounted applications with their own access control, tested elsewhere.
MOUNTED_PREFIXES = ("api/v1/", "admin/", "static/", "__debug__/")


def _walk(patterns, prefix="", namespace=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p.callback, (namespace + p.name) if p.name else None


def app_views() -> list[tuple[str, object, str | None]]:
    return [
        (route, callback, name)
        for route, callback, name in _walk(get_resolver().url_patterns)
        if not route.startswith(MOUNTED_PREFIXES)
    ]


def test_every_view_declares_an_access_rule():
    undeclared = [
        f"{route} ({name})"
        for route, callback, name in app_views()
        if name not in PUBLIC and not hasattr(callback, "required_role")
    ]
    assert not undeclared, f"views without an access rule (use role_required or add to PUBLIC): {undeclared}"


def _fill(route: str, sample: dict) -> str:
    """Turn a route like 'actions/<int:action_id>/' into a path with sample values."""

    def value(match: re.Match) -> str:
        name = match.group(2)
        for key, val in sample.items():
            if name == key or name.endswith(key):
                return str(val)
        raise AssertionError(f"no sample value for URL parameter <{name}> in {route}: add one to the matrix")

    path = re.sub(r"<(?:(\w+):)?(\w+)>", value, route)
    path = path.replace("^", "").replace("$", "")
    return "/" + path


@pytest.fixture
def world(db):
    """Two deployments; members of the first; one outsider member of the second."""
    mine = DeploymentFactory(slug="mine", stage="approval")
    theirs = DeploymentFactory(slug="theirs")
    members = {
        "reviewer": MemberFactory(role=Member.Role.REVIEWER, deployments=[mine]),
        "senior": MemberFactory(role=Member.Role.SENIOR, deployments=[mine]),
        "admin": MemberFactory(role=Member.Role.ADMIN),
        "outsider": MemberFactory(role=Member.Role.SENIOR, deployments=[theirs]),
    }
    action = ProposedActionFactory(deployment=mine)
    sample = {"slug": mine.slug, "action_id": action.pk, "pk": action.pk, "id": action.pk}
    return members, sample


def _declared_views():
    return [(route, cb, name) for route, cb, name in app_views() if hasattr(cb, "required_role")]


@pytest.mark.parametrize("method", ["get", "post"])
def test_matrix(client, world, method):
    members, sample = world
    problems = []
    for route, callback, _name in _declared_views():
        path = _fill(route, sample)
        required = callback.required_role
        # Anonymous: sent to sign in, never shown anything.
        client.logout()
        r = getattr(client, method)(path)
        if not (r.status_code == 302 and "/accounts/login/" in r["Location"]) and r.status_code not in (403, 405):
            problems.append(f"anonymous {method.upper()} {path} → {r.status_code}")
        for who, member in members.items():
            client.force_login(member.user)
            r = getattr(client, method)(path)
            allowed = ROLE_RANK[Member.Role(member.role)] >= ROLE_RANK[required]
            if r.status_code >= 500:
                problems.append(f"{who} {method.upper()} {path} → {r.status_code}")
            elif not allowed and r.status_code not in (403, 404, 405):
                problems.append(f"{who} ({member.role} < {required}) {method.upper()} {path} → {r.status_code}")
            elif who == "outsider" and "<" in route and r.status_code not in (403, 404, 405):
                # Every parametrised page here names an object of a deployment the outsider is not on.
                problems.append(f"outsider {method.upper()} {path} → {r.status_code}")
    assert not problems, "\n".join(problems)
