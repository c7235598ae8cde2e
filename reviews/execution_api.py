"""Agent API of issue 15 (SPEC §7): claim the execution, report the result, reconcile an
unknown result, cancel, and propose a list of actions of one run. Thin: validate, call one
service of reviews.execution or reviews.runs, answer with the action's representation."""

from collections.abc import Callable
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Field, Header, Router, Schema
from pydantic import StrictBool

from core.fastjson import json_bytes
from deployments.api import ErrorOut, bearer
from reviews.api import ERRORS, ActionId, ActionOut, NulFreeText, ProposalIn
from reviews.batch import proposed_actions_create_batch
from reviews.canonical import request_fingerprint
from reviews.execution import (
    proposed_action_cancel,
    proposed_action_execution_claim,
    proposed_action_expire_if_due,
    proposed_action_reconcile,
    proposed_action_report_result,
)
from reviews.idempotency import idempotency_claim, idempotency_release
from reviews.models import ProposedAction
from reviews.representation import action_representation
from reviews.runs import MAX_BATCH
from reviews.selectors import action_get_for_deployment

router = Router(auth=bearer, tags=["execution"])
Sha256 = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")
ClaimKey = Field("", max_length=255, pattern=r"^[\x21-\x7e]*$", description="The claimer's token (printable ASCII)")


class ClaimIn(Schema):
    claim_key: str = ClaimKey
    payload_sha256: str = Field("", max_length=64, pattern=r"^([0-9a-f]{64})?$")


class ClaimOut(ActionOut):
    claim_key: str = Field(description="Send it with the result; a retry of this claim with it is answered again")


class ResultIn(Schema):
    status: Literal["executed", "failed", "unknown"]
    payload_sha256: str = Sha256
    error: NulFreeText = Field("", max_length=20_000)
    claim_key: str = ClaimKey


class CancelIn(Schema):
    reason: NulFreeText = Field("", max_length=2000)


class ReconcileIn(CancelIn):
    committed: StrictBool = Field(
        description="true: the effect happened (executed); false: it did not (claim once more)"
    )


class BatchIn(Schema):
    run_id: NulFreeText = Field("", max_length=200)
    run_hold: StrictBool = False
    actions: list[ProposalIn] = Field(min_length=1, max_length=MAX_BATCH)


class BatchOut(Schema):
    run_id: str | None
    actions: list[ActionOut]


CONFLICTS = {**ERRORS, 409: ErrorOut}


def _action(request: HttpRequest, action_id: int):
    return action_get_for_deployment(deployment=request.auth.deployment, action_id=action_id)


def _label(request: HttpRequest) -> str:
    return f"api-key:{request.auth.prefix}"


def _moved(request: HttpRequest, action_id: int, move: Callable[..., ProposedAction], **fields: Any) -> dict:
    """Apply `move` (a reviews.execution service) to this key's action; its representation."""
    action = move(action_id=_action(request, action_id).pk, actor_label=_label(request), **fields)
    return action_representation(action, deployment_slug=request.auth.deployment.slug)


@router.post(
    "/actions/{action_id}/claim",
    response={200: ClaimOut, **CONFLICTS},
    summary="Claim the execution of an approved action",
)
def action_claim(request: HttpRequest, action_id: ActionId, data: ClaimIn | None = None) -> Any:
    """Granted once per approval: run the action only after a 200. Any other claim (a replayed
    proposal, a retry after a crash, a second process) is refused with 409 `already_claimed`; the
    same `claim_key` sent again while executing is answered again. 409 `expired` past the deadline."""
    data = data or ClaimIn()
    action = proposed_action_expire_if_due(action=_action(request, action_id))
    action, _ = proposed_action_execution_claim(
        action_id=action.pk, claim_key=data.claim_key, payload_hash=data.payload_sha256, actor_label=_label(request)
    )
    return {**action_representation(action), "claim_key": action.execution_claim_key}


@router.post(
    "/actions/{action_id}/result",
    response={200: ActionOut, **CONFLICTS},
    summary="Report the execution result",
)
def action_result(request: HttpRequest, action_id: ActionId, data: ResultIn) -> Any:
    """After the claim: `executed`, `failed` or `unknown` (you cannot tell), with the SHA-256 of the
    final payload. A second result is refused (409 `already_reported`) unless it is the same one
    sent again with the claim's `claim_key`."""
    return _moved(
        request,
        action_id,
        proposed_action_report_result,
        status=data.status,
        payload_hash=data.payload_sha256,
        error=data.error,
        claim_key=data.claim_key,
    )


@router.post(
    "/actions/{action_id}/reconcile",
    response={200: ActionOut, **CONFLICTS},
    summary="Reconcile an unknown result",
)
def action_reconcile(request: HttpRequest, action_id: ActionId, data: ReconcileIn) -> Any:
    """`committed: true` records the execution; `false` re-opens the action for exactly one more
    execution claim. Only for an action whose result is `unknown`."""
    return _moved(request, action_id, proposed_action_reconcile, committed=data.committed, reason=data.reason)


@router.post(
    "/actions/{action_id}/cancel",
    response={200: ActionOut, **CONFLICTS},
    summary="Cancel a pending or approved action not yet claimed",
)
def action_cancel(request: HttpRequest, action_id: ActionId, data: CancelIn | None = None) -> Any:
    """It leaves the queues at once; a later decision or claim is refused. Safe to repeat."""
    return _moved(request, action_id, proposed_action_cancel, reason=(data or CancelIn()).reason)


@router.post(
    "/actions/batch",
    response={201: BatchOut, **CONFLICTS},
    summary="Propose a list of actions of one run",
    description=f"Up to {MAX_BATCH} proposals, each routed on its own, all stored or none (a refusal names "
    "the item). `parent_id` names an action stored before. `Idempotency-Key` as for a single proposal.",
)
def actions_batch(
    request: HttpRequest,
    data: BatchIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=255, min_length=1),
) -> Any:
    key = request.auth
    proposals = []
    for item in data.actions:
        proposals.append({"proposal": item.proposal(), "parent_id": item.parent_id, "deadline": item.deadline()})
    record = None
    if idempotency_key is not None:
        fingerprint = request_fingerprint({"batch": data.model_dump(mode="json")})
        record = idempotency_claim(deployment=key.deployment, key=idempotency_key, fingerprint=fingerprint)
        if not record.in_flight:
            return JsonResponse(
                record.response_body, status=record.response_status, headers={"Idempotent-Replayed": "true"}
            )
    try:
        _, body = proposed_actions_create_batch(
            deployment=key.deployment,
            proposals=proposals,
            run_id=data.run_id,
            run_hold=data.run_hold,
            actor_label=_label(request),
            idempotency_record=record,
        )
    except BaseException:
        if record is not None:
            idempotency_release(record=record)
        raise
    return HttpResponse(json_bytes(body), content_type="application/json", status=201)
