"""Slack approvals against a local fake of Slack's Web API (a real HTTP server on loopback the
SDK's WebClient is pointed at), with interactions signed the way Slack signs them."""

import json
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from deployments.models import Member
from deployments.services import breaker_trip
from integrations.models import SlackMessage, SlackUser
from integrations.slack.services import slack_interactions_purge, slack_sla_warnings, slack_user_link
from reviews.claims import proposed_action_claim
from reviews.models import Decision, ProposedAction
from reviews.services import proposed_action_approve
from tests.factories import DeploymentFactory, MemberFactory, action_propose
from tests.integrations.support import fake_slack, slack_signed

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0123456789"
URL = "/integrations/slack/interactions"

pytestmark = pytest.mark.django_db


@pytest.fixture
def slack(settings):
    with fake_slack() as fake:
        settings.TRUSTLADDER_SLACK_API_URL = fake.url
        settings.TRUSTLADDER_SLACK_SIGNING_SECRET = SECRET
        settings.TRUSTLADDER_SLACK_BOT_TOKEN = "xoxb-test-token"
        settings.TRUSTLADDER_BASE_URL = "https://trustladder.example.com"
        yield fake


@pytest.fixture
def world(db):
    deployment = DeploymentFactory(stage="approval", slack_channel=CHANNEL)
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    senior = MemberFactory(role=Member.Role.SENIOR, deployments=[deployment])
    slack_user_link(username=reviewer.user.username, slack_user_id="UREVIEWER1")
    slack_user_link(username=senior.user.username, slack_user_id="USENIOR001")
    return deployment, reviewer.user, senior.user


def propose(deployment, **overrides) -> ProposedAction:
    return action_propose(
        deployment,
        action_type=overrides.pop("action_type", "refund.issue"),
        payload=overrides.pop("payload", {"order": "A-1", "amount_cents": 1200}),
        risk_score=overrides.pop("risk_score", 0.2),
        confidence=overrides.pop("confidence", 0.9),
        rationale=overrides.pop("rationale", "charged twice <!channel>"),
        **overrides,
    )


def buttons(call) -> dict:
    actions = next(b for b in call.body["blocks"] if b["type"] == "actions")
    return {e["action_id"]: e for e in actions["elements"]}


def click(call, action_id: str, slack_user: str) -> dict:
    """The block_actions payload Slack sends when `slack_user` clicks a button of the message."""
    return {
        "type": "block_actions",
        "user": {"id": slack_user, "team_id": "T1"},
        "team": {"id": "T1"},
        "trigger_id": f"trigger-{time.monotonic_ns()}",
        "channel": {"id": CHANNEL},
        "container": {"type": "message", "channel_id": CHANNEL, "message_ts": "1700000000.000100"},
        "actions": [{"action_id": action_id, "value": buttons(call)[action_id]["value"], "type": "button"}],
    }


def submission(view: dict, slack_user: str, reason: str) -> dict:
    return {
        "type": "view_submission",
        "user": {"id": slack_user},
        "team": {"id": "T1"},
        "view": {
            "callback_id": view["callback_id"],
            "private_metadata": view["private_metadata"],
            "state": {"values": {"reason": {"reason_input": {"type": "plain_text_input", "value": reason}}}},
        },
    }


def send(payload: dict, *, secret: str = SECRET, at: float | None = None, capture=None):
    body, headers = slack_signed(payload, secret, at=at)
    with capture(execute=True):
        return Client().post(URL, data=body, content_type="application/x-www-form-urlencoded", **headers)


def posted(slack, deployment_channel=CHANNEL):
    return [c for c in slack.of("chat.postMessage") if c.body["channel"] == deployment_channel]


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def test_an_action_entering_a_queue_is_posted_with_what_a_reviewer_needs(world, slack, capture):
    deployment, _, _ = world
    with capture(execute=True):
        action = propose(deployment)
        propose(DeploymentFactory(stage="approval"))  # no channel: nothing posted
    [call] = slack.of("chat.postMessage")
    assert call.body["channel"] == CHANNEL and call.token == "Bearer xoxb-test-token"
    text = json.dumps(call.body["blocks"], ensure_ascii=False)
    for shown in ("refund.issue", "amount_cents=1200", "0.200", "0.900", "charged twice", "reviewer queue"):
        assert shown in text
    assert f"https://trustladder.example.com/actions/{action.pk}/" in text
    # Agent text is plain_text: it cannot mention @channel.
    rationale = next(b for b in call.body["blocks"] if b["type"] == "context" and "Rationale" in json.dumps(b))
    assert rationale["elements"][0]["type"] == "plain_text"
    assert set(buttons(call)) == {"tl_approve", "tl_reject", "tl_escalate"}
    value = json.loads(buttons(call)["tl_approve"]["value"])
    assert value == {"id": action.pk, "sha": action.proposal_sha256, "status": "pending_review"}
    message = SlackMessage.objects.get(action=action)
    assert message.ts == "1700000000.000100" and message.shown_status == "pending_review"


def test_auto_routed_actions_are_not_posted(slack, capture):
    deployment = DeploymentFactory(stage="autonomous", slack_channel=CHANNEL)
    with capture(execute=True):
        propose(deployment, risk_score=0.05, confidence=0.99)
    assert slack.of("chat.postMessage") == []


def test_approve_from_slack_decides_as_the_linked_member_and_a_replay_changes_nothing(world, slack, capture):
    deployment, reviewer, _ = world
    with capture(execute=True):
        action = propose(deployment)
    payload = click(slack.of("chat.postMessage")[0], "tl_approve", "UREVIEWER1")
    body, headers = slack_signed(payload, SECRET)
    with capture(execute=True):
        response = Client().post(URL, data=body, content_type="application/x-www-form-urlencoded", **headers)
    assert response.status_code == 200
    action.refresh_from_db()
    assert action.status == "approved" and action.final_payload == action.payload
    assert Decision.objects.get(action=action).actor == reviewer
    [update] = slack.of("chat.update")
    text = json.dumps(update.body["blocks"])
    assert "Approved" in text and reviewer.username in text
    assert not any(b["type"] == "actions" for b in update.body["blocks"])  # no buttons any more

    calls = len(slack.calls)
    with capture(execute=True):
        replay = Client().post(URL, data=body, content_type="application/x-www-form-urlencoded", **headers)
    assert replay.status_code == 200
    assert Decision.objects.filter(action=action).count() == 1
    assert len(slack.calls) == calls  # nothing at all happened
    # Kept an hour, past the signature's 5 minutes; then purged.
    assert slack_interactions_purge() == 0
    assert slack_interactions_purge(now=timezone.now() + timedelta(hours=2)) == 1


@pytest.mark.parametrize(
    "tamper",
    ["wrong-secret", "too-old", "no-timestamp", "garbled-timestamp"],
)
def test_unsigned_or_stale_requests_are_refused(world, slack, capture, tamper):
    deployment, _, _ = world
    with capture(execute=True):
        action = propose(deployment)
    payload = click(slack.of("chat.postMessage")[0], "tl_approve", "UREVIEWER1")
    secret = "not-the-secret" if tamper == "wrong-secret" else SECRET
    at = time.time() - 6 * 60 if tamper == "too-old" else None
    body, headers = slack_signed(payload, secret, at=at)
    if tamper == "no-timestamp":
        del headers["HTTP_X_SLACK_REQUEST_TIMESTAMP"]
    if tamper == "garbled-timestamp":
        headers["HTTP_X_SLACK_REQUEST_TIMESTAMP"] = "12e4"
    response = Client().post(URL, data=body, content_type="application/x-www-form-urlencoded", **headers)
    assert response.status_code == 401
    action.refresh_from_db()
    assert action.status == "pending_review"


@pytest.mark.parametrize(
    "raw",
    ["payload=%7Bnot+json", "payload=NaN", "payload=%5B1%5D", "nothing=here", "payload=" + "%5B" * 900 + "%5D" * 900],
    ids=["broken", "nan", "list", "missing", "deep"],
)
def test_hostile_bodies_are_4xx_and_change_nothing(world, slack, raw):
    import hashlib
    import hmac

    ts = str(int(time.time()))
    signature = "v0=" + hmac.new(SECRET.encode(), f"v0:{ts}:{raw}".encode(), hashlib.sha256).hexdigest()
    response = Client().post(
        URL,
        data=raw.encode(),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=ts,
        HTTP_X_SLACK_SIGNATURE=signature,
    )
    assert 400 <= response.status_code < 500
    assert not Decision.objects.exists()


def test_unlinked_and_unassigned_slack_users_are_refused_and_told(world, slack, capture):
    deployment, _, _ = world
    outsider = MemberFactory(role=Member.Role.REVIEWER, deployments=[DeploymentFactory()])
    slack_user_link(username=outsider.user.username, slack_user_id="UOUTSIDER1")
    with capture(execute=True):
        action = propose(deployment)
    call = slack.of("chat.postMessage")[0]
    send(click(call, "tl_approve", "UNOBODY001"), capture=capture)
    send(click(call, "tl_approve", "UOUTSIDER1"), capture=capture)
    told = slack.of("chat.postEphemeral")
    assert [t.body["user"] for t in told] == ["UNOBODY001", "UOUTSIDER1"]
    assert "not linked" in told[0].body["text"] and "link_slack" in told[0].body["text"]
    assert "not assigned to this deployment" in told[1].body["text"]
    action.refresh_from_db()
    assert action.status == "pending_review" and not Decision.objects.exists()


def test_a_reviewer_cannot_decide_the_senior_queue_from_slack(world, slack, capture):
    deployment, _, _ = world
    with capture(execute=True):
        action = propose(deployment, risk_score=0.9)
    call = slack.of("chat.postMessage")[0]
    assert set(buttons(call)) == {"tl_approve", "tl_reject"}  # no escalation from the senior queue
    send(click(call, "tl_approve", "UREVIEWER1"), capture=capture)
    assert "only senior reviewers" in slack.of("chat.postEphemeral")[0].body["text"]
    action.refresh_from_db()
    assert action.status == "pending_senior"
    send(click(call, "tl_approve", "USENIOR001"), capture=capture)
    action.refresh_from_db()
    assert action.status == "approved"


def test_reject_asks_for_a_reason_in_a_modal(world, slack, capture):
    deployment, reviewer, _ = world
    with capture(execute=True):
        action = propose(deployment)
    send(click(slack.of("chat.postMessage")[0], "tl_reject", "UREVIEWER1"), capture=capture)
    [opened] = slack.of("views.open")
    view = opened.body["view"]
    assert view["type"] == "modal" and opened.body["trigger_id"].startswith("trigger-")
    action.refresh_from_db()
    assert action.status == "pending_review"  # the click alone decides nothing

    empty = send(submission(view, "UREVIEWER1", "   "), capture=capture)
    assert empty.json() == {"response_action": "errors", "errors": {"reason": "A reason is required."}}
    done = send(submission(view, "UREVIEWER1", "wrong customer"), capture=capture)
    assert done.status_code == 200 and done.content == b""
    action.refresh_from_db()
    assert action.status == "rejected" and action.reason == "wrong customer"
    assert Decision.objects.get(action=action, verb="reject").actor == reviewer
    update = slack.of("chat.update")[-1]
    assert "Rejected" in json.dumps(update.body["blocks"]) and "wrong customer" in json.dumps(update.body["blocks"])


def test_escalate_moves_to_the_senior_queue_and_the_message_follows(world, slack, capture):
    deployment, reviewer, senior = world
    with capture(execute=True):
        action = propose(deployment)
    send(click(slack.of("chat.postMessage")[0], "tl_escalate", "UREVIEWER1"), capture=capture)
    view = slack.of("views.open")[0].body["view"]
    send(submission(view, "UREVIEWER1", "needs a senior"), capture=capture)
    action.refresh_from_db()
    assert action.status == "pending_senior"
    update = slack.of("chat.update")[-1]
    assert set(buttons(update)) == {"tl_approve", "tl_reject"}
    assert "Escalated" in json.dumps(update.body["blocks"])
    send(click(update, "tl_approve", "USENIOR001"), capture=capture)
    action.refresh_from_db()
    assert action.status == "approved" and action.decisions.last().actor == senior


def test_a_click_on_a_stale_message_is_refused_and_the_message_says_why(world, slack, capture):
    deployment, reviewer, senior = world
    with capture(execute=True):
        action = propose(deployment)
    call = slack.of("chat.postMessage")[0]
    with capture(execute=True):  # decided in the browser meanwhile (with an edit)
        proposed_action_approve(action_id=action.pk, actor=senior, payload={"order": "A-1", "amount_cents": 10})
    send(click(call, "tl_approve", "UREVIEWER1"), capture=capture)
    assert Decision.objects.filter(action=action).count() == 1
    update = slack.of("chat.update")[-1]
    text = json.dumps(update.body["blocks"])
    assert "click was refused" in text and "now approved" in text and "UREVIEWER1" in text
    assert "now approved" in slack.of("chat.postEphemeral")[-1].body["text"]

    # A button bound to another payload than the action's: refused as edited.
    with capture(execute=True):
        other = propose(deployment, payload={"order": "B-2"})
    forged = click(slack.of("chat.postMessage")[-1], "tl_approve", "UREVIEWER1")
    value = json.loads(forged["actions"][0]["value"])
    forged["actions"][0]["value"] = json.dumps({**value, "sha": "0" * 64})
    send(forged, capture=capture)
    other.refresh_from_db()
    assert other.status == "pending_review"
    assert "edited" in slack.of("chat.postEphemeral")[-1].body["text"]


def test_someone_elses_claim_is_respected(world, slack, capture):
    deployment, reviewer, senior = world
    with capture(execute=True):
        action = propose(deployment)
    proposed_action_claim(action_id=action.pk, actor=senior)
    send(click(slack.of("chat.postMessage")[0], "tl_approve", "UREVIEWER1"), capture=capture)
    assert "is working on this item" in slack.of("chat.postEphemeral")[-1].body["text"]
    action.refresh_from_db()
    assert action.status == "pending_review"


def test_breaker_trips_are_posted_once(slack, capture):
    deployment = DeploymentFactory(stage="supervised", slack_channel=CHANNEL)
    with capture(execute=True):
        assert breaker_trip(deployment_id=deployment.pk, reason="failure rate 0.4 > 0.1")
        assert not breaker_trip(deployment_id=deployment.pk, reason="again")
    [call] = slack.of("chat.postMessage")
    assert "Circuit breaker tripped" in json.dumps(call.body["blocks"])
    assert "failure rate 0.4" in json.dumps(call.body["blocks"])


def test_items_near_their_sla_are_posted_in_the_thread_once(world, slack, capture):
    deployment, _, _ = world
    with capture(execute=True):
        action = propose(deployment)
    assert slack_sla_warnings() == 0  # a full day left
    ProposedAction.objects.filter(pk=action.pk).update(expires_at=timezone.now() + timedelta(minutes=30))
    assert slack_sla_warnings() == 1
    assert slack_sla_warnings() == 0  # once per deadline
    warning = slack.of("chat.postMessage")[-1]
    assert warning.body["thread_ts"] == SlackMessage.objects.get(action=action).ts
    assert "near its SLA" in json.dumps(warning.body["blocks"])


def test_link_slack_command(db):
    member = MemberFactory(role=Member.Role.REVIEWER)
    call_command("link_slack", member.user.username, "U0ABCDEF12")
    assert SlackUser.objects.get(user=member.user).slack_user_id == "U0ABCDEF12"
    call_command("link_slack", member.user.username, "U0ABCDEF99")  # relinked, not duplicated
    assert SlackUser.objects.get(user=member.user).slack_user_id == "U0ABCDEF99"
    with pytest.raises(CommandError, match="no user"):
        call_command("link_slack", "nobody", "U0ABCDEF12")
    with pytest.raises(CommandError, match="not a Slack user id"):
        call_command("link_slack", member.user.username, "<script>")


def test_a_slack_outage_never_fails_a_proposal(world, slack, capture):
    deployment, _, _ = world
    slack.fail_next = 10
    with capture(execute=True):
        action = propose(deployment)
    assert ProposedAction.objects.get(pk=action.pk).status == "pending_review"


def test_slack_channel_command_sets_and_clears_audited(db):
    from deployments.models import AuditEvent

    deployment = DeploymentFactory()
    call_command("slack_channel", deployment.slug, "C0AAAABBBB")
    deployment.refresh_from_db()
    assert deployment.slack_channel == "C0AAAABBBB"
    call_command("slack_channel", deployment.slug, "")
    deployment.refresh_from_db()
    assert deployment.slack_channel == ""
    events = AuditEvent.objects.filter(verb="integrations.slack.channel_set", deployment=deployment)
    assert [e.data["after"] for e in events.order_by("created_at", "id")] == ["C0AAAABBBB", ""]
    with pytest.raises(CommandError, match="not a Slack channel id"):
        call_command("slack_channel", deployment.slug, "#general")
    with pytest.raises(CommandError, match="no deployment"):
        call_command("slack_channel", "nope", "C0AAAABBBB")


BOUND_HOSTILE = [
    '{"id": Infinity, "sha": "s", "status": "pending_review"}',
    '{"id": 1e400, "sha": "s", "status": "pending_review"}',
    '{"id": NaN, "sha": "s", "status": "pending_review"}',
    '{"id": 99999999999999999999999, "sha": "s", "status": "pending_review"}',
    '{"id": "1\\u0000", "sha": "s", "status": "pending_review"}',
    '{"id": 1, "sha": "\\ud800", "status": "\\u0000"}',
    "[" * 5000 + "]" * 5000,
    12,
    None,
    {"id": 1},
]
TEXT_HOSTILE = ["U\x00", "\ud800", "x" * 20_000, 12, None, {"a": 1}, ["x"]]


def _with(payload: dict, path: tuple, value) -> dict:
    changed = json.loads(json.dumps(payload))
    target = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


def test_signed_payloads_with_hostile_values_anywhere_are_never_a_500_and_change_nothing(
    world, slack, capture, settings
):
    """Slack's signature proves who sent a request, not that its values are sane: every field
    the handler reads, with hostile values, inside correctly signed requests. Each request is
    one a sane value would make a decision of (or open the reason modal), so nothing may change."""
    settings.TRUSTLADDER_SLACK_TEAM_ID = "T1"  # a hostile team id is then refused, not ignored
    deployment, _, _ = world
    with capture(execute=True):
        action = propose(deployment)
    call = slack.of("chat.postMessage")[0]
    approve, reject = (click(call, name, "UREVIEWER1") for name in ("tl_approve", "tl_reject"))
    view = {
        "callback_id": "tl_reason",
        "private_metadata": json.dumps(
            {"id": action.pk, "sha": action.proposal_sha256, "status": action.status, "decision": "reject"}
        ),
    }
    reasoned = submission(view, "UREVIEWER1", "a reason")
    cases = []
    for base in (approve, reject):
        cases += [_with(base, ("actions", 0, "value"), v) for v in BOUND_HOSTILE]
        cases += [_with(base, ("actions", 0, "action_id"), v) for v in TEXT_HOSTILE]
        cases += [_with(base, ("user", "id"), v) for v in TEXT_HOSTILE]
        # The workspace: team.id, or the user's team_id when there is none; both hostile.
        cases += [_with(_with(base, ("team", "id"), v), ("user", "team_id"), v) for v in TEXT_HOSTILE]
    # The modal's trigger and the channel (for the refusal notice): only the reject click reads them.
    for path in (("trigger_id",), ("channel", "id")):
        cases += [_with(reject, path, v) for v in TEXT_HOSTILE]
    cases += [_with(reasoned, ("view", "private_metadata"), v) for v in BOUND_HOSTILE]
    cases += [_with(reasoned, ("view", "state", "values", "reason", "reason_input", "value"), v) for v in TEXT_HOSTILE]
    cases += [_with(reasoned, ("view", "state"), v) for v in TEXT_HOSTILE]
    cases += [_with(reasoned, ("user", "id"), v) for v in TEXT_HOSTILE]
    for payload in cases:
        response = send(payload, capture=capture)
        assert response.status_code < 500, (payload, response.content[:300])
    assert len(cases) > 80
    assert not Decision.objects.exists()
    action.refresh_from_db()
    assert action.status == "pending_review"
