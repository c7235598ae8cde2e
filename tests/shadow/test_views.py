"""Shadow pages: rendering, access (assigned members, admins all, 404 otherwise), forms."""

import pytest
from django.test import Client
from django.urls import reverse

from deployments.models import Member
from reviews.models import ProposedAction
from reviews.shadow import services
from reviews.shadow.models import ShadowAdjudication, ShadowOutcome, ShadowRecompute
from tests.factories import DeploymentFactory, MemberFactory, ProposedActionFactory

pytestmark = pytest.mark.django_db


def login(member: Member) -> Client:
    client = Client()
    client.force_login(member.user)
    return client


@pytest.fixture
def data(deployment):
    """Three compared pairs on two action types: one agrees, two disagree."""
    specs = [("refund.issue", {"a": 1}, "refund.issue", {"a": 1}), ("refund.issue", {"a": 1}, "refund.issue", {"a": 2})]
    specs.append(("refund.deny", {"why": "x"}, "refund.issue", {"a": 3}))
    ids = []
    for i, (ai_type, ai, human_type, human) in enumerate(specs):
        a = ProposedActionFactory(
            deployment=deployment,
            external_id=f"E-{i}",
            action_type=ai_type,
            payload=ai,
            route="shadow",
            stage="shadow",
            status="logged",
            model_version="m-7",
        )
        ShadowOutcome.objects.create(
            deployment=deployment, external_id=f"E-{i}", action_type=human_type, payload=human, decided_by="ann"
        )
        ids.append(a.pk)
    services.shadow_compare_actions(action_ids=ids)
    return ids


def test_report_renders_evidence_and_svg_charts(reviewer, deployment, data, django_assert_max_num_queries):
    client = login(reviewer)
    # 12, and one each from issue 16 (who reported the outcomes) and issue 19 (the top bar's claim).
    with django_assert_max_num_queries(13):
        r = client.get(reverse("shadow:report", args=[deployment.slug]))
    assert r.status_code == 200
    html = r.content.decode()
    assert "<svg" in html and "<polyline" in html and "<rect" in html
    assert "refund.deny" in html and "m-7" in html
    assert "0.333" in html  # 1 of 3 agree
    assert "http://" not in html.replace("http://www.w3.org", "") and "cdn" not in html.lower()


def test_report_without_data_renders(reviewer, deployment):
    r = login(reviewer).get(reverse("shadow:report", args=[deployment.slug]))
    assert r.status_code == 200 and "No compared pairs yet" in r.content.decode()


@pytest.mark.parametrize("name", ["report", "disagreements", "rules"])
def test_pages_are_404_for_deployments_not_assigned(deployment, name):
    other = MemberFactory(role=Member.Role.SENIOR, deployments=[DeploymentFactory()])
    assert login(other).get(reverse(f"shadow:{name}", args=[deployment.slug])).status_code == 404


@pytest.mark.parametrize("name", ["report", "disagreements", "rules"])
def test_admins_see_every_deployment(admin, deployment, name):
    assert login(admin).get(reverse(f"shadow:{name}", args=[deployment.slug])).status_code == 200


def test_anonymous_is_sent_to_login(deployment):
    r = Client().get(reverse("shadow:report", args=[deployment.slug]))
    assert r.status_code == 302 and "/accounts/login/" in r["Location"]


def test_disagreements_list_shows_diffs_and_adjudication_changes_the_evidence(reviewer, deployment, data):
    client = login(reviewer)
    url = reverse("shadow:disagreements", args=[deployment.slug])
    html = client.get(url).content.decode()
    assert "E-1" in html and "E-2" in html and "E-0" not in html
    assert "amount" not in html and "<code>a</code>" in html  # the diff's path
    r = client.post(
        reverse("shadow:adjudicate", args=[deployment.slug, data[1]]), {"verdict": "ai_right", "reason": "fine"}
    )
    assert r.status_code == 302
    assert ShadowAdjudication.objects.get(action_id=data[1]).verdict == "ai_right"
    report = client.get(reverse("shadow:report", args=[deployment.slug])).content.decode()
    assert "0.667" in report  # 2 of 3 now count as agreement
    open_html = client.get(url + "?open=1").content.decode()
    assert "E-1" not in open_html and "E-2" in open_html


def test_adjudicating_twice_shows_a_message_not_an_error(reviewer, deployment, data):
    client = login(reviewer)
    url = reverse("shadow:adjudicate", args=[deployment.slug, data[1]])
    client.post(url, {"verdict": "ai_right"})
    r = client.post(url, {"verdict": "human_right"}, follow=True)
    assert r.status_code == 200 and "already adjudicated" in r.content.decode()
    r = client.post(url.replace(str(data[1]), str(data[0])), {"verdict": "bogus"}, follow=True)
    assert "unknown verdict" in r.content.decode()


def test_adjudicate_is_404_for_other_deployments(deployment, data):
    other = MemberFactory(role=Member.Role.REVIEWER, deployments=[DeploymentFactory()])
    r = login(other).post(reverse("shadow:adjudicate", args=[deployment.slug, data[1]]), {"verdict": "ai_right"})
    assert r.status_code == 404
    assert not ShadowAdjudication.objects.exists()


def test_adjudicate_is_404_for_an_action_of_another_deployment_under_a_visible_slug(data):
    elsewhere = DeploymentFactory()
    member = MemberFactory(role=Member.Role.REVIEWER, deployments=[elsewhere])
    # The action is the other deployment's; the slug is one the member works on.
    r = login(member).post(reverse("shadow:adjudicate", args=[elsewhere.slug, data[1]]), {"verdict": "ai_right"})
    assert r.status_code == 404
    assert not ShadowAdjudication.objects.exists()


def test_rules_editor_saves_and_recomputes(admin, deployment, data, django_capture_on_commit_callbacks):
    client = login(admin)
    url = reverse("shadow:rules", args=[deployment.slug])
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(url, {"rules": '{"ignore": ["a"]}'})
    assert r.status_code == 302
    deployment.refresh_from_db()
    assert deployment.comparison_rules == {"ignore": ["a"]}
    recompute = ShadowRecompute.objects.get()
    assert recompute.status == "done" and recompute.changed == 2  # E-1 now agrees; E-2 loses field a
    page = client.get(url).content.decode()
    assert "<progress" in page and 'value="100"' in page and 'hx-trigger="every 1s"' not in page


def test_rules_editor_refuses_bad_input_with_a_message(admin, deployment):
    client = login(admin)
    url = reverse("shadow:rules", args=[deployment.slug])
    r = client.post(url, {"rules": "{nope"})
    assert r.status_code == 422 and "not valid JSON" in r.content.decode()
    r = client.post(url, {"rules": '{"numeric_tolerance": -3}'})
    assert r.status_code == 422 and "numeric_tolerance" in r.content.decode()
    deployment.refresh_from_db()
    assert deployment.comparison_rules == {}


def test_only_admins_change_rules_or_recompute(reviewer, deployment):
    client = login(reviewer)
    assert client.post(reverse("shadow:rules", args=[deployment.slug]), {"rules": "{}"}).status_code == 403
    assert client.post(reverse("shadow:recompute", args=[deployment.slug])).status_code == 403
    page = client.get(reverse("shadow:rules", args=[deployment.slug])).content.decode()
    assert "Only admins change the rules" in page


def test_progress_partial_polls_while_running_and_stops_when_done(admin, deployment, data):
    client = login(admin)
    recompute = ShadowRecompute.objects.create(deployment=deployment, total=3, processed=1)
    url = reverse("shadow:recompute_progress", args=[deployment.slug, recompute.pk])
    html = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 1s"' in html and 'value="33"' in html and "<html" not in html
    assert "Recompute now" not in html
    rules_page = client.get(reverse("shadow:rules", args=[deployment.slug])).content.decode()
    assert 'hx-trigger="every 1s"' in rules_page
    recompute.status, recompute.processed = "done", 3
    recompute.save()
    html = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in html and 'value="100"' in html


def test_starting_a_second_recompute_from_the_page_is_refused(admin, deployment, data):
    ShadowRecompute.objects.create(deployment=deployment, total=3)
    r = login(admin).post(reverse("shadow:recompute", args=[deployment.slug]), follow=True)
    assert "already running" in r.content.decode()
    assert ShadowRecompute.objects.count() == 1


def test_compared_status_is_shown_in_the_api_representation(deployment, data):
    a = ProposedAction.objects.get(pk=data[2])
    assert a.status == "compared" and a.comparison["diff"][0]["kind"] == "action_type"
