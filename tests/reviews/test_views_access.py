"""Who may use which review page, with which method; CSRF on every form."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from deployments.models import Member
from reviews.models import ProposedAction
from tests.factories import DeploymentFactory, MemberFactory, ProposedActionFactory, UserFactory

Status = ProposedAction.Status

GET_PAGES = ["reviews:queue", "reviews:senior_queue", "reviews:audit_queue", "reviews:nav_counts"]
ACTION_GET = ["reviews:action_detail"]
ACTION_POST = ["reviews:decide", "reviews:audit_verdict", "reviews:claim", "reviews:release"]
PLAIN_POST = ["reviews:claim_next"]
ROLES = ["anonymous", "no_role", "reviewer", "outsider", "senior", "admin"]


def _client(role: str, deployment) -> Client:
    client = Client()
    if role == "anonymous":
        return client
    if role == "no_role":
        client.force_login(UserFactory())
        return client
    member_role = {"reviewer": "reviewer", "outsider": "reviewer", "senior": "senior", "admin": "admin"}[role]
    assigned = [DeploymentFactory()] if role == "outsider" else [deployment]
    client.force_login(MemberFactory(role=Member.Role(member_role), deployments=assigned).user)
    return client


def _expected(role: str, name: str, method: str) -> set[int]:
    """Allowed status codes for this role, view and method."""
    if role == "anonymous":
        return {302}  # to the sign-in page
    if role == "no_role":
        return {403}
    senior_only = name in ("reviews:senior_queue", "reviews:audit_queue", "reviews:audit_verdict")
    if senior_only and role in ("reviewer", "outsider"):
        return {403}
    wants = "GET" if name in GET_PAGES + ACTION_GET else "POST"
    if method != wants:
        return {405}
    if role == "outsider" and name in ACTION_GET + ACTION_POST:
        return {404}
    if name == "reviews:audit_verdict":
        return {409}  # the action is no audit sample: a message, nothing changed
    return {200} if method == "GET" else {302}


CASES = [
    (role, name, method)
    for role in ROLES
    for name in GET_PAGES + ACTION_GET + ACTION_POST + PLAIN_POST
    for method in ("GET", "POST")
]


@pytest.mark.parametrize(("role", "name", "method"), CASES, ids=["-".join(c) for c in CASES])
def test_every_review_url_for_every_role_and_method(deployment, role, name, method):
    client = _client(role, deployment)
    action = ProposedActionFactory(deployment=deployment)
    url = reverse(name, args=[action.pk]) if name in ACTION_GET + ACTION_POST else reverse(name)
    data = {"decision": "approve", "verdict": "correct", "queue": "review"} if method == "POST" else {}
    response = client.post(url, data) if method == "POST" else client.get(url)
    assert response.status_code in _expected(role, name, method), response.content[:300]
    if role == "anonymous":
        assert response["Location"].startswith(reverse("login"))


def test_reviewer_cannot_claim_from_the_senior_queue(reviewer):
    client = Client()
    client.force_login(reviewer.user)
    assert client.post(reverse("reviews:claim_next"), {"queue": "senior"}).status_code == 403
    assert client.post(reverse("reviews:claim_next"), {"queue": "audit"}).status_code == 403


def test_senior_of_another_deployment_gets_404_on_its_audit_samples(deployment):
    sample = ProposedActionFactory(deployment=deployment, status=Status.EXECUTED, route="auto", audit_sample=True)
    client = Client()
    client.force_login(MemberFactory(role=Member.Role.SENIOR, deployments=[DeploymentFactory()]).user)
    assert client.get(reverse("reviews:action_detail", args=[sample.pk])).status_code == 404
    response = client.post(reverse("reviews:audit_verdict", args=[sample.pk]), {"verdict": "correct"})
    assert response.status_code == 404
    assert ProposedAction.objects.get(pk=sample.pk).audit_verdict == ""


@pytest.mark.parametrize("name", ACTION_POST + PLAIN_POST + ["logout"])
def test_every_post_needs_the_csrf_token(senior, deployment, name):
    client = Client(enforce_csrf_checks=True)
    client.force_login(senior.user)
    action = ProposedActionFactory(deployment=deployment)
    url = reverse(name, args=[action.pk]) if name in ACTION_POST else reverse(name)
    response = client.post(url, {"decision": "approve", "verdict": "correct", "queue": "review"})
    assert response.status_code == 403
    action.refresh_from_db()
    assert action.status == Status.PENDING_REVIEW and action.claimed_by_id is None


def test_every_form_on_the_pages_carries_the_token(senior, deployment):
    client = Client()
    client.force_login(senior.user)
    pending = ProposedActionFactory(deployment=deployment)
    sample = ProposedActionFactory(deployment=deployment, status=Status.EXECUTED, route="auto", audit_sample=True)
    pages = [
        reverse("reviews:queue"),
        reverse("reviews:senior_queue"),
        reverse("reviews:audit_queue"),
        reverse("reviews:action_detail", args=[pending.pk]),
        reverse("reviews:action_detail", args=[sample.pk]),
        reverse("login"),
    ]
    for url in pages:
        html = client.get(url).content.decode() if url != reverse("login") else Client().get(url).content.decode()
        forms = re.findall(r"<form[^>]*>.*?</form>", html, flags=re.S)
        posts = [f for f in forms if 'method="post"' in f]
        assert posts, url
        for form in posts:
            assert "csrfmiddlewaretoken" in form, (url, form[:200])
    # htmx requests send the token in a header set on <body>.
    assert 'hx-headers=\'{"X-CSRFToken": "' in client.get(pages[3]).content.decode()
