"""The Python client against a live server (pytest-django's live_server): the gate decorator,
proposals with Idempotency-Key, waiting, and webhook verification.

The client runs in a thread (it only speaks HTTP); the people's decisions are made in the
test's own thread through the services, as the browser would.
"""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from trustladder_client import (
    ActionExpired,
    ActionRejected,
    ActionShadowed,
    ApiError,
    Client,
    DecisionTimeout,
    payload_sha256,
)

from deployments.models import Member
from reviews.models import ProposedAction
from reviews.services import proposed_action_approve, proposed_action_expire, proposed_action_reject
from tests.deliveries.support import wait_for
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db(transaction=True)
ORDER = {"order": "A-1", "amount_cents": 1200}


class Call:
    """Run a gated call in a thread; `.result` or `.error` once `.join()` returns."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, fn, args, kwargs) -> None:
        try:
            self.result = fn(*args, **kwargs)
        except Exception as exc:  # handed to the test
            self.error = exc

    def join(self) -> "Call":
        self.thread.join(60)
        assert not self.thread.is_alive(), "the gated call did not finish"
        return self


def proposed(deployment) -> ProposedAction:
    return wait_for(lambda: ProposedAction.objects.filter(deployment=deployment).first(), 30, "nothing proposed")


def test_approval_with_an_edit_runs_the_function_with_the_final_payload_and_reports_it(make_client):
    client, deployment = make_client("approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    ran: list[dict] = []

    @client.gate("refund.issue", timeout=30, risk_score=0.2, confidence=0.97)
    def refund(payload: dict) -> str:
        ran.append(payload)
        return "refunded"

    call = Call(refund, ORDER, external_id="A-1")
    action = proposed(deployment)
    assert action.status == "pending_review" and action.external_id == "A-1"
    edited = {"order": "A-1", "amount_cents": 900}
    proposed_action_approve(action_id=action.pk, actor=reviewer.user, payload=edited)
    call.join()

    assert call.error is None and call.result == "refunded"
    assert ran == [edited]
    action.refresh_from_db()
    assert action.status == "executed" and action.payload_sha256 == payload_sha256(edited)


def test_rejection_raises_and_the_function_never_runs(make_client):
    client, deployment = make_client("approval")
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[deployment])
    ran = []
    refund = client.gate("refund.issue", timeout=30)(ran.append)

    call = Call(refund, ORDER, risk_score=0.2, confidence=0.97)
    proposed_action_reject(action_id=proposed(deployment).pk, actor=reviewer.user, reason="customer already refunded")
    call.join()
    assert isinstance(call.error, ActionRejected)
    assert "customer already refunded" in str(call.error) and call.error.action.decision == "reject"
    assert ran == []


def test_shadow_raises_and_the_function_never_runs(make_client):
    client, deployment = make_client("shadow")
    ran = []
    refund = client.gate("refund.issue", timeout=30)(ran.append)
    with pytest.raises(ActionShadowed, match="shadow"):
        refund(ORDER, risk_score=0.01, confidence=0.999)
    assert ran == []
    assert ProposedAction.objects.get(deployment=deployment).status == "logged"


def test_expiry_raises(make_client):
    client, deployment = make_client("approval")
    ran = []
    refund = client.gate("refund.issue", timeout=30)(ran.append)
    call = Call(refund, ORDER, risk_score=0.2, confidence=0.97)
    action = proposed(deployment)
    proposed_action_expire(action_id=action.pk, now=action.expires_at + timedelta(seconds=1))
    call.join()
    assert isinstance(call.error, ActionExpired) and ran == []


def test_auto_execution_runs_at_once_and_a_failure_is_reported_then_raised(make_client):
    client, deployment = make_client("supervised")

    @client.gate("refund.issue", risk_score=0.01, confidence=0.999)
    def refund(payload: dict) -> int:
        if payload["amount_cents"] > 1000:
            raise RuntimeError("payment provider down")
        return payload["amount_cents"]

    assert refund({"order": "A-2", "amount_cents": 10}) == 10
    with pytest.raises(RuntimeError, match="payment provider down"):
        refund(ORDER)
    statuses = dict(ProposedAction.objects.filter(deployment=deployment).values_list("payload__order", "status"))
    assert statuses == {"A-2": "executed", "A-1": "failed"}
    failed = ProposedAction.objects.get(deployment=deployment, payload__order="A-1")
    assert "payment provider down" in failed.result_error


def test_propose_with_an_idempotency_key_never_makes_two_actions(make_client):
    client, deployment = make_client("approval")
    first = client.propose("refund.issue", ORDER, risk_score=0.2, confidence=0.97, idempotency_key="k-1")
    again = client.propose("refund.issue", ORDER, risk_score=0.2, confidence=0.97, idempotency_key="k-1")
    assert again.id == first.id and first.decision == "wait"
    assert ProposedAction.objects.filter(deployment=deployment).count() == 1
    with pytest.raises(ApiError) as refused:
        client.propose("refund.issue", {"other": 1}, risk_score=0.2, confidence=0.97, idempotency_key="k-1")
    assert refused.value.status_code == 422 and refused.value.code == "idempotency_key_reused"
    assert client.get(first.id).status == "pending_review"


def test_wait_gives_up_with_decision_timeout(make_client):
    client, _ = make_client("approval")
    action = client.propose("refund.issue", ORDER, risk_score=0.2, confidence=0.97)
    with pytest.raises(DecisionTimeout) as timed_out:
        client.wait(action.id, timeout=0.3, initial_interval=0.05)
    assert timed_out.value.action.decision == "wait"


def test_api_errors_carry_code_and_detail(make_client, live_server):
    client, _ = make_client("approval")
    with pytest.raises(ApiError) as not_found:
        client.get(10**9)
    assert not_found.value.status_code == 404
    action = client.propose("refund.issue", ORDER, risk_score=0.2, confidence=0.97)
    with pytest.raises(ApiError) as conflict:
        client.report_result(action.id, status="executed", payload_sha256="0" * 64)
    assert conflict.value.status_code == 409
    with pytest.raises(ApiError) as unauthorized, Client(live_server.url, "tl_wrong") as stranger:
        stranger.get(action.id)
    assert unauthorized.value.status_code == 401


class FlakyServer:
    """A real HTTP server that answers GET with 503 `failures` times, then with a decided action."""

    def __init__(self, failures: int, final_status: int = 200) -> None:
        self.calls = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 -- http.server's naming
                server.calls += 1
                if server.calls <= failures:
                    status, body = 503, {"error": "unavailable", "detail": "restarting"}
                elif final_status == 200:
                    status, body = 200, {"id": 7, "status": "approved", "decision": "execute"}
                else:
                    status, body = final_status, {"error": "not_found", "detail": "no action 7"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.django_db(transaction=False)
def test_wait_keeps_polling_through_a_brief_outage_but_not_through_a_4xx():
    flaky = FlakyServer(failures=3)
    try:
        with Client(flaky.url, "tl_x", retries=0) as client:
            assert client.wait(7, timeout=30, initial_interval=0.01).decision == "execute"
        assert flaky.calls == 4
    finally:
        flaky.close()
    gone = FlakyServer(failures=1, final_status=404)
    try:
        with Client(gone.url, "tl_x", retries=0) as client, pytest.raises(ApiError) as error:
            client.wait(7, timeout=30, initial_interval=0.01)
        assert error.value.status_code == 404 and gone.calls == 2
    finally:
        gone.close()
