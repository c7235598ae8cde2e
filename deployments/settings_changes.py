"""Governed settings (issue 16 item 1): a change that can only raise oversight applies at once;
one that may lower it is a SettingsChangeRequest that a different admin approves.

Every field in GOVERNED has a direction (`_lowers`): for a number, which way is stricter; for
a limit, that "none" is the loosest; for rules, that each old rule is still there, as strict.
A change is applied at once only when no changed field may lower oversight; otherwise the
whole change (its raising parts too, so it is reviewed as one) waits for a second admin.
Because every applied-at-once step is monotone in every field, no sequence of changes by one
admin can end below where it started (tests/deployments/test_settings_changes.py checks it
by property).

Per-type caps: adding or lowering a cap raises oversight and applies at once; lifting or
raising one is a promotion of that type and goes through the gate (`deployment_promotion_request`),
so the settings page refuses it.
"""

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.updates import model_update
from deployments.errors import InvalidInput, InvalidTransition, NotAllowed
from deployments.locks import deployment_lock
from deployments.models import Deployment, SettingsChangeRequest
from deployments.permissions import require_admin
from deployments.policy import Stage
from deployments.rules import rules_change_raises_only
from deployments.services import audit_event_record, reason_required
from deployments.simulator import settings_simulate
from deployments.validators import DEFAULT_BREAKER_SETTINGS, DEFAULT_CRITERIA

# The settings page's fields, named as the model's.
GOVERNED = (
    "auto_max_risk",
    "auto_min_confidence",
    "review_max_risk",
    "audit_sample_rate",
    "review_sla",
    "senior_sla",
    "stage_caps",
    "gate_criteria",
    "breaker_settings",
    "blast_max_auto",
    "blast_max_value",
    "blast_value_field",
    "blast_window",
    "payload_rules",
    "recertify_demotes",
)
DURATIONS = {"review_sla", "senior_sla", "blast_window"}
# Numbers where a higher value means more oversight; for the others in _NUMBERS, lower does.
_HIGHER_IS_STRICTER = {"auto_min_confidence", "audit_sample_rate", "review_sla", "senior_sla", "blast_window"}
_NUMBERS = {"auto_max_risk", "review_max_risk"} | _HIGHER_IS_STRICTER
# Breaker settings: a lower value trips sooner. The windows change what is measured, in
# no one direction: any change of them is reviewed.
_BREAKER_LOWER_IS_STRICTER = {"min_events", "max_failure_rate", "max_audit_rejected_rate", "volume_factor"}


MAX_JSON_DEPTH = 20
JSON_FIELDS = ("stage_caps", "gate_criteria", "breaker_settings", "payload_rules")


def json_storable_error(value: Any, depth: int = 0) -> str:
    """Why PostgreSQL's jsonb could not store `value` as given ('' if it can): NaN or
    infinite numbers, NUL, lone surrogates; and nesting deeper than MAX_JSON_DEPTH."""
    if depth > MAX_JSON_DEPTH:
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite"
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
            return "strings may not contain NUL or lone surrogates"
    elif isinstance(value, dict):
        for k, v in value.items():
            if error := json_storable_error(k, depth + 1) or json_storable_error(v, depth + 1):
                return error
    elif isinstance(value, list):
        for v in value:
            if error := json_storable_error(v, depth + 1):
                return error
    return ""


def to_json(field: str, value: Any) -> Any:
    """A governed value as stored in a request and the audit log (durations in seconds)."""
    if field in DURATIONS and value is not None:
        return value.total_seconds()
    return value


def from_json(field: str, value: Any) -> Any:
    if field in DURATIONS and value is not None:
        return timedelta(seconds=value)
    return value


def _criterion_lowers(key: str, before: float, after: float) -> bool:
    return after > before if key.startswith("max_") else after < before


def _gate_lowers(before: dict, after: dict) -> bool:
    for stage, defaults in DEFAULT_CRITERIA.items():
        for key, default in defaults.items():
            old = (before or {}).get(stage, {}).get(key, default)
            new = (after or {}).get(stage, {}).get(key, default)
            if _criterion_lowers(key, old, new):
                return True
    return False


def _breaker_lowers(before: dict, after: dict) -> bool:
    for key, default in DEFAULT_BREAKER_SETTINGS.items():
        old, new = (before or {}).get(key, default), (after or {}).get(key, default)
        if old == new:
            continue
        if key not in _BREAKER_LOWER_IS_STRICTER or new > old:
            return True
    return False


def _limit_lowers(before: int | None, after: int | None) -> bool:
    """A limit: None is no limit, the loosest."""
    if after is None:
        return before is not None
    return before is not None and after > before


def _lowers(field: str, before: Any, after: Any, *, blast_limits: bool) -> bool:
    """Whether changing `field` from `before` to `after` may lower oversight."""
    if before == after:
        return False
    if field in _NUMBERS:
        return after < before if field in _HIGHER_IS_STRICTER else after > before
    if field in ("blast_max_auto", "blast_max_value"):
        return _limit_lowers(before, after)
    if field == "blast_value_field":
        return blast_limits  # another field summed: not comparable while a value limit is set
    if field == "gate_criteria":
        return _gate_lowers(before, after)
    if field == "breaker_settings":
        return _breaker_lowers(before, after)
    if field == "payload_rules":
        return not rules_change_raises_only(before, after)
    if field == "recertify_demotes":
        return before and not after  # opting out of automatic demotion
    # Caps: only additions and lowerings get this far (_check_caps). Anything else: reviewed.
    return field != "stage_caps"


def lowering_fields(deployment: Deployment, changes: dict[str, Any]) -> list[str]:
    """The fields of `changes` (python values) that may lower `deployment`'s oversight."""
    blast_limits = deployment.blast_max_value is not None or changes.get("blast_max_value") is not None
    return [f for f, v in changes.items() if _lowers(f, getattr(deployment, f), v, blast_limits=blast_limits)]


def _check_caps(deployment: Deployment, caps: Any) -> None:
    if not isinstance(caps, dict):
        raise InvalidInput("stage_caps: must be an object of action type → stage")
    stage = Stage(deployment.stage)
    old = deployment.stage_caps or {}
    for action_type, cap in caps.items():
        if cap not in {s.value for s in Stage}:
            raise InvalidInput(f"stage_caps: {action_type}: unknown stage {cap!r}")
        if Stage(cap).rank >= stage.rank:
            raise InvalidInput(f"stage_caps: {action_type}: a cap must be below the deployment's stage ({stage})")
        if action_type in old and Stage(cap).rank > Stage(old[action_type]).rank:
            raise InvalidInput(
                f"stage_caps: raising the cap of {action_type} is a promotion of that type: request it on the gate page"
            )
    lifted = sorted(set(old) - set(caps))
    if lifted:
        raise InvalidInput(
            f"stage_caps: lifting the cap of {', '.join(lifted)} is a promotion of that type: "
            "request it on the gate page"
        )


def _validated(deployment: Deployment, changes: dict[str, Any]) -> None:
    """Raise InvalidInput unless `deployment` with `changes` applied is valid (not saved)."""
    candidate = Deployment.objects.get(pk=deployment.pk)
    for field, value in changes.items():
        if field in JSON_FIELDS and (error := json_storable_error(value)):
            raise InvalidInput(f"{field}: {error}")
        setattr(candidate, field, value)
    for field in ("auto_max_risk", "auto_min_confidence", "review_max_risk", "audit_sample_rate"):
        value = getattr(candidate, field)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput(f"{field}: must be a finite number")
    try:
        candidate.full_clean(exclude=[f.name for f in Deployment._meta.fields if f.name not in GOVERNED])
    except ValidationError as exc:
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        raise InvalidInput(detail) from None


def _apply(deployment: Deployment, changes: dict[str, Any]) -> None:
    """Set `changes` on the locked deployment and save them; a new or lowered cap starts that
    type's evidence window now."""
    fields = list(changes)
    if "stage_caps" in changes:
        entered = dict(deployment.stage_caps_entered_at or {})
        old = deployment.stage_caps or {}
        for action_type, cap in changes["stage_caps"].items():
            if old.get(action_type) != cap:
                entered[action_type] = timezone.now().isoformat()
        deployment.stage_caps_entered_at = entered
        fields.append("stage_caps_entered_at")
    for field, value in changes.items():
        setattr(deployment, field, value)
    deployment.save(update_fields=fields)


@dataclass(frozen=True)
class ChangeOutcome:
    applied: bool  # True: applied at once; False: `request` waits for a second admin
    request: SettingsChangeRequest | None = None


@transaction.atomic
def deployment_settings_change(
    *, deployment_id: int, actor: AbstractBaseUser, changes: dict[str, Any], reason: str
) -> ChangeOutcome:
    """Change governed settings (python values, e.g. timedelta for SLAs). Admins only, reason
    required. Applied at once, audited (`deployments.settings.changed`), when it can only raise
    oversight; otherwise a SettingsChangeRequest with before/after and the replay
    (`deployments.settings.change_requested`), refused while another request is open.
    InvalidInput for an unknown field, no change, or an invalid result."""
    require_admin(actor, "change a deployment's settings")
    reason = reason_required(reason, "change a deployment's settings")
    unknown = sorted(set(changes) - set(GOVERNED))
    if unknown:
        raise InvalidInput(f"not a governed setting: {', '.join(unknown)}")
    deployment = deployment_lock(deployment_id)
    changes = {f: v for f, v in changes.items() if getattr(deployment, f) != v}
    if not changes:
        raise InvalidInput("nothing changed")
    if "stage_caps" in changes:
        _check_caps(deployment, changes["stage_caps"])
    _validated(deployment, changes)
    before = {f: to_json(f, getattr(deployment, f)) for f in changes}
    after = {f: to_json(f, v) for f, v in changes.items()}
    lowering = lowering_fields(deployment, changes)
    if not lowering:
        _apply(deployment, changes)
        audit_event_record(
            verb="deployments.settings.changed",
            actor=actor,
            obj=deployment,
            reason=reason,
            data={"before": before, "after": after, "raises_oversight_only": True},
        )
        return ChangeOutcome(applied=True)
    if SettingsChangeRequest.objects.filter(deployment=deployment, status=SettingsChangeRequest.Status.OPEN).exists():
        raise InvalidTransition("a settings change request is already open for this deployment; decide it first")
    request = SettingsChangeRequest.objects.create(
        deployment=deployment,
        before=before,
        after=after,
        lowering=lowering,
        simulation=settings_simulate(deployment=deployment, changes=changes),
        requested_by=actor,
        request_reason=reason,
    )
    audit_event_record(
        verb="deployments.settings.change_requested",
        actor=actor,
        deployment=deployment,
        obj=request,
        reason=reason,
        data={"before": before, "after": after, "lowering": lowering},
    )
    return ChangeOutcome(applied=False, request=request)


def _lock_change(request_id: int) -> tuple[SettingsChangeRequest, Deployment]:
    try:
        deployment_id = SettingsChangeRequest.objects.values_list("deployment_id", flat=True).get(pk=request_id)
    except SettingsChangeRequest.DoesNotExist:
        raise InvalidInput(f"settings change request {request_id} does not exist") from None
    deployment = deployment_lock(deployment_id)  # the deployment first, then the request, as promotions do
    return SettingsChangeRequest.objects.select_for_update().get(pk=request_id), deployment


def _decide(*, request_id: int, actor: AbstractBaseUser, reason: str, approve: bool) -> SettingsChangeRequest:
    what = "approve a settings change" if approve else "reject a settings change"
    require_admin(actor, what)
    reason = reason_required(reason, what)
    request, deployment = _lock_change(request_id)
    if not request.is_open:
        raise InvalidTransition(f"this request is {request.status}; only open requests can be decided")
    if approve and request.requested_by_id == actor.pk:
        raise NotAllowed("four-eyes: a different admin must approve your own settings change")
    if approve:
        now_values = {f: to_json(f, getattr(deployment, f)) for f in request.before}
        if now_values != request.before:
            raise InvalidTransition("the settings changed since this request was made; reject it and request again")
        changes = {f: from_json(f, v) for f, v in request.after.items()}
        _validated(deployment, changes)
        _apply(deployment, changes)
    status = SettingsChangeRequest.Status.APPROVED if approve else SettingsChangeRequest.Status.REJECTED
    model_update(request, status=status, decided_by=actor, decided_at=timezone.now(), decision_reason=reason)
    audit_event_record(
        verb=f"deployments.settings.change_{request.status}",
        actor=actor,
        deployment=deployment,
        obj=request,
        reason=reason,
        data={"before": request.before, "after": request.after, "requested_by": request.requested_by.get_username()},
    )
    return request


@transaction.atomic
def settings_change_approve(*, request_id: int, actor: AbstractBaseUser, reason: str) -> SettingsChangeRequest:
    """A different admin approves: the change applies now, if the settings it changes are
    still as they were when it was requested."""
    return _decide(request_id=request_id, actor=actor, reason=reason, approve=True)


@transaction.atomic
def settings_change_reject(*, request_id: int, actor: AbstractBaseUser, reason: str) -> SettingsChangeRequest:
    """Any admin (the requester too: withdrawing) rejects: nothing changes."""
    return _decide(request_id=request_id, actor=actor, reason=reason, approve=False)
