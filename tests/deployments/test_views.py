"""Pages: overview, dashboard, gate, audit log; role checks, admin actions, CSRF."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from deployments.models import AuditEvent, Member, PromotionRequest
from deployments.services import audit_event_record, breaker_trip
from tests.deployments.test_gate import approval_evidence, make
from tests.factories import DeploymentFactory, MemberFactory

pytestmark = pytest.mark.django_db


def client_for(member: Member | None) -> Client:
    c = Client()
    if member is not None:
        c.force_login(member.user)
    return c


@pytest.fixture
def other_deployment(db):
    return DeploymentFactory(stage="approval")


@pytest.fixture
def admin2(db) -> Member:
    return MemberFactory(role=Member.Role.ADMIN)


PAGES = ["/deployments/", "/deployments/{slug}/", "/deployments/{slug}/gate/"]


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ["reviewer", "senior", "admin"])
def test_dashboards_render_for_every_role_that_may_see_them(page, role, request, deployment):
    member = request.getfixturevalue(role)
    r = client_for(member).get(page.format(slug=deployment.slug))
    assert r.status_code == 200
    assert deployment.slug in r.content.decode()


@pytest.mark.parametrize("page", [*PAGES, "/audit/"])
def test_people_without_a_role_get_403_and_anonymous_sign_in(page, deployment):
    user = get_user_model().objects.create_user("nobody", password="pw-for-tests")
    nobody = Client()
    nobody.force_login(user)
    assert nobody.get(page.format(slug=deployment.slug)).status_code == 403
    r = Client().get(page.format(slug=deployment.slug))
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]


def test_unassigned_deployments_are_not_shown(reviewer, other_deployment):
    c = client_for(reviewer)
    assert other_deployment.slug not in c.get("/deployments/").content.decode()
    assert c.get(f"/deployments/{other_deployment.slug}/").status_code == 404
    assert c.get(f"/deployments/{other_deployment.slug}/gate/").status_code == 404


def test_audit_log_is_for_seniors_and_admins(reviewer, senior, admin, deployment, other_deployment):
    audit_event_record(verb="test.mine", deployment=deployment)
    audit_event_record(verb="test.other", deployment=other_deployment)
    assert client_for(reviewer).get("/audit/").status_code == 403
    senior_page = client_for(senior).get("/audit/").content.decode()
    assert "test.mine" in senior_page and "test.other" not in senior_page
    admin_page = client_for(admin).get("/audit/").content.decode()
    assert "test.mine" in admin_page and "test.other" in admin_page


def test_overview_shows_queue_depths_and_rates(admin, deployment, django_assert_max_num_queries):
    from deployments.services import evidence_add
    from tests.factories import ProposedActionFactory

    ProposedActionFactory.create_batch(3, deployment=deployment)
    evidence_add(deployment_id=deployment.pk, action_type="a", metric="proposed.auto", n=3)
    evidence_add(deployment_id=deployment.pk, action_type="a", metric="proposed.review", n=1)
    c = client_for(admin)
    with django_assert_max_num_queries(10):
        html = c.get("/deployments/").content.decode()
    row = html[html.index(f'data-slug="{deployment.slug}"') :]
    row = row[: row.index("</tr>")]
    assert "<td>3</td>" in row and "75.0%" in row


def test_dashboard_has_svg_charts_timeline_and_breaker_state(admin, admin2):
    d = make("approval")
    approval_evidence(d)
    from deployments.services import deployment_promotion_approve, deployment_promotion_request

    req = deployment_promotion_request(deployment_id=d.pk, actor=admin.user, reason="ready")
    deployment_promotion_approve(request_id=req.pk, actor=admin2.user, reason="agreed")
    breaker_trip(deployment_id=d.pk, reason="execution failure rate 9% over 60 min")
    html = client_for(admin).get(f"/deployments/{d.slug}/").content.decode()
    assert html.count("<svg") == 2 and "<script" not in html.split("</head>")[1]
    assert "deployments.stage.promoted" in html and admin2.user.username in html and "agreed" in html
    assert "Frozen evidence" in html
    assert "tripped" in html and "execution failure rate 9%" in html
    assert f'action="/deployments/{d.slug}/breaker/reset"' in html


def test_admin_actions_are_403_for_others_and_need_csrf(reviewer, senior, admin, deployment):
    for member in (reviewer, senior):
        r = client_for(member).post(f"/deployments/{deployment.slug}/pause", {"reason": "x"})
        assert r.status_code == 403
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin.user)
    assert strict.post(f"/deployments/{deployment.slug}/pause", {"reason": "x"}).status_code == 403
    deployment.refresh_from_db()
    assert not deployment.paused
    html = client_for(admin).get(f"/deployments/{deployment.slug}/").content.decode()
    assert html.count("csrfmiddlewaretoken") >= 2


def test_pause_resume_demote_reset_through_the_pages(admin, deployment):
    c = client_for(admin)
    url = f"/deployments/{deployment.slug}/"
    r = c.post(url + "pause", {"reason": ""}, follow=True)
    assert "reason" in r.content.decode()  # refused with a message, not a 500
    deployment.refresh_from_db()
    assert not deployment.paused
    c.post(url + "pause", {"reason": "incident"})
    deployment.refresh_from_db()
    assert deployment.paused
    c.post(url + "resume", {"reason": "ok"})
    deployment.refresh_from_db()
    assert not deployment.paused
    r = c.post(url + "breaker/reset", {"reason": "nothing to reset"}, follow=True)
    assert "not tripped" in r.content.decode()
    breaker_trip(deployment_id=deployment.pk, reason="test")
    c.post(url + "breaker/reset", {"reason": "fixed"})
    deployment.refresh_from_db()
    assert not deployment.breaker_tripped
    r = c.post(url + "demote", {"to_stage": "autonomous", "reason": "x"}, follow=True)
    assert "demotion goes down" in r.content.decode()
    c.post(url + "demote", {"to_stage": "approval", "reason": "audit findings"})
    deployment.refresh_from_db()
    assert deployment.stage == "approval"


def test_promotion_through_the_gate_page_with_four_eyes(admin, admin2):
    d = make("approval")
    approval_evidence(d)
    gate = f"/deployments/{d.slug}/gate/"
    first = client_for(admin)
    html = first.get(gate).content.decode()
    assert "Request promotion to supervised" in html and 'class="badge ok outcome"' in html
    r = first.post(gate + "request", {"to_stage": "autonomous", "reason": ""}, follow=True)
    assert "one step at a time" in r.content.decode()
    first.post(gate + "request", {"to_stage": "supervised", "reason": "ready"})
    req = PromotionRequest.objects.get()
    html = first.get(gate).content.decode()
    assert "another admin must approve" in html and 'value="approve"' not in html
    r = first.post(gate + f"requests/{req.pk}/decide", {"decision": "approve", "reason": "me"}, follow=True)
    assert "four-eyes" in r.content.decode()
    second = client_for(admin2)
    assert 'value="approve"' in second.get(gate).content.decode()
    second.post(gate + f"requests/{req.pk}/decide", {"decision": "approve", "reason": "agreed"})
    d.refresh_from_db()
    assert d.stage == "supervised"


def test_gate_page_shows_each_criterion(reviewer):
    d = make("shadow", days_in_stage=3)
    reviewer.deployments.add(d)
    html = client_for(reviewer).get(f"/deployments/{d.slug}/gate/").content.decode()
    for name in ("compared_pairs", "agreement_lower", "per_type_agreement", "days_in_stage"):
        assert f'data-criterion="{name}"' in html
    assert "inconclusive" in html and "Request promotion" not in html


def test_audit_log_filters_pages_and_exports_csv(admin, deployment):
    for i in range(60):
        audit_event_record(verb="test.bulk", deployment=deployment, reason=f"r{i}")
    audit_event_record(verb="deployments.stage.demoted", actor=admin.user, deployment=deployment, reason="=HYPERLINK()")
    c = client_for(admin)
    html = c.get("/audit/", {"verb": "test"}).content.decode()
    assert html.count("<code>test.bulk</code>") == 50 and 'rel="next"' in html
    next_link = html.split('rel="next"')[0].rsplit('href="?', 1)[1].split('"')[0].replace("&amp;", "&")
    page2 = c.get("/audit/?" + next_link).content.decode()
    assert page2.count("<code>test.bulk</code>") == 10 and 'rel="next"' not in page2
    only_admin = c.get("/audit/", {"actor": admin.user.username}).content.decode()
    assert "deployments.stage.demoted" in only_admin and "test.bulk" not in only_admin
    assert c.get("/audit/", {"before": "garbage"}).status_code == 200
    r = c.get("/audit/", {"deployment": deployment.slug, "verb": "deployments.stage", "format": "csv"})
    assert r["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(r.streaming_content).decode())))
    assert rows[0][:3] == ["created_at", "verb", "actor"]
    assert len(rows) == 3 and rows[1][1] == "deployments.stage.demoted" and rows[1][6] == "'=HYPERLINK()"
    assert rows[2][0].startswith("# audit chain")  # the export ends with the chain's head
    assert AuditEvent.objects.count() >= 61


def test_demotion_by_type_refuses_a_type_the_deployment_never_saw(admin):
    d = make("supervised")
    approval_evidence(d)  # counters for t.a
    c = client_for(admin)
    r = c.post(f"/deployments/{d.slug}/demote", {"to_stage": "approval", "action_type": "t.b", "reason": "x"})
    assert r.status_code == 302
    d.refresh_from_db()
    assert d.stage == "supervised" and not d.stage_caps
    assert "never seen the action type &#x27;t.b&#x27;" in c.get(r["Location"]).content.decode()
    html = c.get(f"/deployments/{d.slug}/").content.decode()
    assert '<option value="t.a">only t.a</option>' in html
    assert '<option value="approval" selected>approval (one stage down)</option>' in html
    r = c.post(f"/deployments/{d.slug}/demote", {"to_stage": "approval", "action_type": "t.a", "reason": "x"})
    d.refresh_from_db()
    assert d.stage_caps == {"t.a": "approval"}


def test_audit_log_filters_match_anywhere_ignoring_case(admin, deployment):
    audit_event_record(verb="reviews.action.edited_and_approved", actor_label="priya", deployment=deployment)
    audit_event_record(verb="deployments.stage.demoted", actor_label="admin2", deployment=deployment)
    c = client_for(admin)
    html = c.get("/audit/", {"verb": "APPROVED"}).content.decode()
    assert "Action approved with edits" in html and "deployments.stage.demoted" not in html
    html = c.get("/audit/", {"actor": "min2"}).content.decode()
    assert "Stage demoted" in html and "edited_and_approved" not in html
