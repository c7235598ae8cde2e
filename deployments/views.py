"""Pages: deployments overview, deployment dashboard, promotion gate, audit log (SPEC §6).

Thin: read through selectors, write through one service, domain errors become messages.
Every page declares the least role that may see it; admin actions need the admin role.
"""

import csv
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from deployments import selectors, services
from deployments.auditchain import audit_chain_status
from deployments.breakers import breaker_reading, settings_for
from deployments.charts import stacked_bars_svg
from deployments.counters import Metric
from deployments.errors import DomainError
from deployments.gate import gate_evaluate
from deployments.models import Member
from deployments.permissions import (
    deployment_visible_or_404,
    deployments_visible_to,
    require_in_deployment,
    role_required,
)
from deployments.policy import STAGE_ORDER, Stage

STAGE_CHOICES = [(s.value, s.value) for s in STAGE_ORDER]


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=2000, strip=True)


class DemoteForm(ReasonForm):
    to_stage = forms.ChoiceField(choices=STAGE_CHOICES)
    action_type = forms.CharField(max_length=100, required=False, strip=True)


class PromotionRequestForm(forms.Form):
    to_stage = forms.ChoiceField(choices=STAGE_CHOICES)
    action_type = forms.CharField(max_length=100, required=False, strip=True)
    reason = forms.CharField(max_length=2000, required=False, strip=True)


class PromotionDecisionForm(ReasonForm):
    decision = forms.ChoiceField(choices=[("approve", "approve"), ("reject", "reject")])


def _form_error(form: forms.Form) -> str:
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


def _act(request: HttpRequest, form: forms.Form, action: Callable[[dict], str], back: str) -> HttpResponse:
    """Validate, call one service, turn the outcome into a message, redirect back."""
    if not form.is_valid():
        messages.error(request, _form_error(form))
    else:
        try:
            messages.success(request, action(form.cleaned_data))
        except DomainError as exc:
            messages.error(request, exc.detail)
    return HttpResponseRedirect(back)


@require_GET
@role_required(Member.Role.REVIEWER)
def deployment_list(request: HttpRequest) -> HttpResponse:
    return render(request, "deployments/list.html", {"rows": selectors.deployment_overview(request.member)})


@require_GET
@role_required(Member.Role.REVIEWER)
def deployment_detail(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    days = selectors.daily_metrics(deployment, days=30)
    labels = [d.strftime("%m-%d") for d, _ in days]
    decision_series = {
        verb: [m[Metric.of("decision", verb)] for _, m in days]
        for verb in ("approve", "edit", "reject", "escalate", "expire")
    }
    execution_series = {
        "executed": [m[Metric.EXECUTION_EXECUTED_AUTO] for _, m in days],
        "failed": [m[Metric.EXECUTION_FAILED_AUTO] for _, m in days],
    }
    totals = {verb: sum(values) for verb, values in decision_series.items()}
    decided = sum(totals.values())
    executed, failed = sum(execution_series["executed"]), sum(execution_series["failed"])
    context = {
        "deployment": deployment,
        "depths": selectors.queue_depths([deployment.pk])[deployment.pk],
        "timeline": selectors.stage_timeline(deployment),
        "decision_mix": [(verb, n, n / decided if decided else None) for verb, n in totals.items()],
        "decided": decided,
        "auto_executed": executed + failed,
        "auto_failure_rate": failed / (executed + failed) if executed + failed else None,
        "decision_chart": stacked_bars_svg(labels=labels, series=decision_series, title="Decisions per day (30 days)"),
        "execution_chart": stacked_bars_svg(
            labels=labels, series=execution_series, title="Auto-executions per day (30 days)"
        ),
        "agreement": selectors.shadow_agreement_by_type(deployment, since=days[0][0]),
        "breaker": breaker_reading(deployment),
        "breaker_settings": settings_for(deployment),
        "has_breaker": deployment.stage in (Stage.SUPERVISED, Stage.AUTONOMOUS),
        "lower_stages": [s.value for s in STAGE_ORDER if s.rank < Stage(deployment.stage).rank],
        "caps": sorted((deployment.stage_caps or {}).items()),
        "action_types": selectors.known_action_types(deployment),
        "chart_tables": [
            ("Decisions per day", labels, decision_series),
            ("Auto-executions per day", labels, execution_series),
        ],
    }
    return render(request, "deployments/detail.html", context)


@require_GET
@role_required(Member.Role.REVIEWER)
def deployment_gate(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    action_type = request.GET.get("action_type", "").strip()[:100]
    if action_type and action_type not in (deployment.stage_caps or {}):
        messages.warning(request, f"{action_type} has no cap: it follows the deployment's own gate")
        action_type = ""
    evaluation = gate_evaluate(deployment=deployment, action_type=action_type)
    context = {
        "deployment": deployment,
        "evaluation": evaluation,
        "action_type": action_type,
        "caps": sorted((deployment.stage_caps or {}).items()),
        "open_request": selectors.open_promotion_request(deployment, action_type),
        "requests": selectors.promotion_requests(deployment),
    }
    return render(request, "deployments/gate.html", context)


def _back(slug: str, page: str = "detail", action_type: str = "") -> str:
    url = reverse(f"deployments:{page}", kwargs={"slug": slug})
    return f"{url}?action_type={action_type}" if action_type else url


@require_POST
@role_required(Member.Role.ADMIN)
def promotion_request_create(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    form = PromotionRequestForm(request.POST)
    action_type = request.POST.get("action_type", "").strip()[:100]

    def act(data: dict) -> str:
        req = services.deployment_promotion_request(
            deployment_id=deployment.pk,
            actor=request.user,
            to_stage=data["to_stage"],
            action_type=data["action_type"],
            reason=data["reason"],
        )
        return f"Promotion to {req.to_stage} requested; another admin must approve it."

    return _act(request, form, act, _back(slug, "gate", action_type))


@require_POST
@role_required(Member.Role.ADMIN)
def promotion_request_decide(request: HttpRequest, slug: str, request_id: int) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    require_in_deployment(deployment.promotion_requests, request_id, "promotion request")
    form = PromotionDecisionForm(request.POST)
    action_type = request.POST.get("action_type", "").strip()[:100]

    def act(data: dict) -> str:
        if data["decision"] == "approve":
            req = services.deployment_promotion_approve(
                request_id=request_id, actor=request.user, reason=data["reason"]
            )
            return f"Approved: {deployment.slug} is now at {req.to_stage}" + (
                f" for {req.action_type}" if req.action_type else ""
            )
        services.deployment_promotion_reject(request_id=request_id, actor=request.user, reason=data["reason"])
        return "Promotion request rejected."

    return _act(request, form, act, _back(slug, "gate", action_type))


@require_POST
@role_required(Member.Role.ADMIN)
def deployment_demote(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    action_type = request.POST.get("action_type", "").strip()
    if action_type and action_type not in selectors.known_action_types(deployment):
        messages.error(
            request, f"{deployment.slug} has never seen the action type {action_type!r}; pick one from the list."
        )
        return HttpResponseRedirect(_back(slug))

    def act(data: dict) -> str:
        services.deployment_demote(
            deployment_id=deployment.pk,
            actor=request.user,
            to_stage=data["to_stage"],
            reason=data["reason"],
            action_type=data["action_type"],
        )
        scope = f" for {data['action_type']}" if data["action_type"] else ""
        return f"Demoted to {data['to_stage']}{scope}."

    return _act(request, DemoteForm(request.POST), act, _back(slug))


def _reason_action(service: Callable[..., object], done: str) -> Callable[[HttpRequest, str], HttpResponse]:
    """An admin POST that takes a reason and calls one deployment service (pause, resume, reset)."""

    @require_POST
    @role_required(Member.Role.ADMIN)
    def view(request: HttpRequest, slug: str) -> HttpResponse:
        deployment = deployment_visible_or_404(request, slug)

        def act(data: dict) -> str:
            service(deployment_id=deployment.pk, actor=request.user, reason=data["reason"])
            return done

        return _act(request, ReasonForm(request.POST), act, _back(slug))

    return view


deployment_pause = _reason_action(services.deployment_pause, "Paused: nothing is auto-executed until it is resumed.")
deployment_resume = _reason_action(services.deployment_resume, "Resumed.")
breaker_reset = _reason_action(services.breaker_reset, "Breaker reset; its window starts again now.")


AUDIT_PAGE_SIZE = 50
CSV_MAX_ROWS = 100_000
CSV_COLUMNS = [
    "created_at",
    "verb",
    "actor",
    "deployment",
    "object_type",
    "object_id",
    "reason",
    "data",
    "chain_seq",
    "chain_hash",
]


def _parse_cursor(raw: str) -> tuple[datetime, int] | None:
    at, _, pk = raw.partition("_")
    try:
        moment = parse_datetime(at.replace(" ", "+")) if at else None
        # In UTC: PostgreSQL refuses offsets past ±15:59, which Python allows up to ±23:59.
        moment = moment.astimezone(UTC) if moment is not None and moment.tzinfo else moment
    except (ValueError, OverflowError):  # a well-formed but impossible date, or out of range in UTC
        return None
    if moment is None or not (pk.isascii() and pk.isdigit()) or int(pk) >= 2**63:
        return None
    return moment, int(pk)


@require_GET
@role_required(Member.Role.SENIOR)
def audit_log(request: HttpRequest) -> HttpResponse:
    filters = selectors.AuditFilter(
        deployment=request.GET.get("deployment", "").strip()[:64],
        actor=request.GET.get("actor", "").strip()[:150],
        verb=request.GET.get("verb", "").strip()[:100],
    )
    qs = selectors.audit_events(request.member, filters)
    if request.GET.get("format") == "csv":
        return _audit_csv(qs, chain=audit_chain_status())
    cursor_raw = request.GET.get("before", "")
    before = _parse_cursor(cursor_raw) if cursor_raw else None
    if cursor_raw and before is None:
        messages.error(request, "That page link is not valid; showing the newest events.")
    events, next_cursor = selectors.audit_page(qs, before=before, size=AUDIT_PAGE_SIZE)
    query = request.GET.copy()
    query.pop("before", None)
    next_query = None
    if next_cursor is not None:
        query["before"] = f"{next_cursor[0].isoformat()}_{next_cursor[1]}"
        next_query = query.urlencode()
    csv_query = request.GET.copy()
    csv_query.pop("before", None)
    csv_query["format"] = "csv"
    context = {
        "events": events,
        "filters": filters,
        "next_query": next_query,
        "csv_query": csv_query.urlencode(),
        "deployments": deployments_visible_to(request.member),
        "chain": audit_chain_status(),
    }
    return render(request, "audit/log.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _audit_csv(qs, *, chain: dict) -> StreamingHttpResponse:
    """Stream the filtered log as CSV (bounded), without loading it into memory. Each row
    carries its place and hash in the chain; the last row is the chain's verified head."""
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for e in qs[:CSV_MAX_ROWS].iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    e.created_at.isoformat(),
                    e.verb,
                    _csv_safe(e.actor_label),
                    e.deployment.slug if e.deployment_id else "",
                    e.object_type,
                    e.object_id,
                    _csv_safe(e.reason),
                    _csv_safe(json.dumps(e.data, sort_keys=True)),
                    e.chain_seq or "",
                    e.chain_hash,
                ]
            )
        yield writer.writerow(_chain_head_row(chain))

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="trustladder-audit-{stamp}.csv"'
    return response


def _chain_head_row(chain: dict) -> list:
    verified = chain["verification"]
    if verified is None:
        return ["# audit chain: not verified yet (manage.py audit_verify)"]
    state = "verified" if verified.ok else f"BROKEN: {verified.problem}"
    return [
        f"# audit chain head {state} at {verified.created_at.isoformat()}",
        f"seq={verified.head_seq}",
        f"sha256={verified.head_hash}",
        f"unsealed={chain['unsealed']}",
    ]


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a leading = + - @ gets a quote."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
