"""The settings page and settings change requests (issue 16 item 1). Admins only; thin: a
form, one service, a message."""

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from deployments.errors import DomainError
from deployments.models import Deployment, Member, SettingsChangeRequest
from deployments.permissions import deployment_visible_or_404, role_required
from deployments.settings_changes import (
    GOVERNED,
    JSON_FIELDS,
    deployment_settings_change,
    json_storable_error,
    settings_change_approve,
    settings_change_reject,
)
from deployments.simulator import settings_simulate


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


class _StrictDecoder(json.JSONDecoder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["parse_constant"] = _refuse_constant
        super().__init__(*args, **kwargs)


class StrictJSONField(forms.JSONField):
    """A JSON object as PostgreSQL can store it: no NaN/Infinity, NUL, lone surrogates or deep
    nesting (every governed JSON setting is an object)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["decoder"] = _StrictDecoder
        super().__init__(**kwargs)

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)  # re-shown as sent

    def prepare_value(self, value: Any) -> Any:
        # Re-shown after an error: a lone surrogate stays escaped, or the page could not be encoded.
        text = super().prepare_value(value)
        if isinstance(text, str) and any("\ud800" <= c <= "\udfff" for c in text):
            return json.dumps(value, ensure_ascii=True)
        return text

    def to_python(self, value: Any) -> Any:
        try:
            value = super().to_python(value)
        except RecursionError:
            raise ValidationError("nested too deeply") from None
        if value is not None and not isinstance(value, dict):
            raise ValidationError("must be a JSON object")
        if error := json_storable_error(value):
            raise ValidationError(error)
        return value


def _json_field(field, **kwargs) -> forms.Field:
    if field.name in JSON_FIELDS:
        return StrictJSONField(
            required=False,
            widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
            help_text=field.help_text,
        )
    return field.formfield(**kwargs)


class SettingsForm(forms.ModelForm):
    """The governed fields, named as the model's; validated as the model validates them."""

    # Required to save (the service says so); a preview needs none.
    reason = forms.CharField(max_length=2000, strip=True, required=False)

    class Meta:
        model = Deployment
        fields = GOVERNED
        formfield_callback = _json_field

    def clean(self) -> dict:
        data = super().clean()
        for name in JSON_FIELDS:
            if data.get(name) is None and name in data:
                data[name] = {}
        return data


def _open_change(deployment: Deployment) -> SettingsChangeRequest | None:
    return deployment.settings_changes.filter(status=SettingsChangeRequest.Status.OPEN).first()


@require_http_methods(["GET", "POST"])
@role_required(Member.Role.ADMIN)
def deployment_settings(request: HttpRequest, slug: str) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    status, simulation = 200, None
    # The calibration page's candidate (?auto_min_confidence=t): pre-filled and replayed,
    # nothing saved. A value that is no number in [0, 1] is ignored.
    candidate = _candidate_confidence(request.GET.get("auto_min_confidence"))
    form = SettingsForm(
        instance=Deployment.objects.get(pk=deployment.pk),
        initial={"auto_min_confidence": candidate} if candidate is not None else None,
    )
    if candidate is not None:
        simulation = settings_simulate(deployment=deployment, changes={"auto_min_confidence": candidate})
    if request.method == "POST":
        # A copy: the form writes into its instance while validating; the service applies.
        form = SettingsForm(request.POST, instance=Deployment.objects.get(pk=deployment.pk))
        if form.is_valid() and request.POST.get("preview"):
            changes = {name: form.cleaned_data[name] for name in GOVERNED}
            simulation = settings_simulate(deployment=deployment, changes=changes)
        elif form.is_valid():
            changes = {name: form.cleaned_data[name] for name in GOVERNED}
            try:
                outcome = deployment_settings_change(
                    deployment_id=deployment.pk,
                    actor=request.user,
                    changes=changes,
                    reason=form.cleaned_data["reason"],
                )
            except DomainError as exc:
                messages.error(request, exc.detail)
                status = exc.http_status
            else:
                if outcome.applied:
                    messages.success(request, "Applied: the change only raises oversight.")
                    return HttpResponseRedirect(reverse("deployments:settings", args=[slug]))
                messages.info(
                    request,
                    "This change may lower oversight (" + ", ".join(outcome.request.lowering) + "): "
                    "it waits for another admin's approval.",
                )
                return HttpResponseRedirect(reverse("deployments:change", args=[slug, outcome.request.pk]))
        else:
            status = 422
    context = {
        "deployment": deployment,
        "form": form,
        "open_change": _open_change(deployment),
        "simulation": simulation,
        "changes": deployment.settings_changes.select_related("requested_by", "decided_by")[:20],
    }
    return render(request, "deployments/settings.html", context, status=status)


def _candidate_confidence(raw: str | None) -> float | None:
    """A threshold from the query string, or None unless it is a finite number in [0, 1]."""
    try:
        value = float(raw or "")
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None  # NaN and ±inf fail both comparisons


def _change(deployment: Deployment, change_id: int) -> SettingsChangeRequest:
    change = (
        SettingsChangeRequest.objects.select_related("requested_by", "decided_by")
        .filter(deployment=deployment, pk=change_id)
        .first()
    )
    if change is None:
        raise Http404("no such change request")
    return change


@require_http_methods(["GET"])
@role_required(Member.Role.ADMIN)
def settings_change_detail(request: HttpRequest, slug: str, change_id: int) -> HttpResponse:
    deployment = deployment_visible_or_404(request, slug)
    change = _change(deployment, change_id)
    rows = [(f, change.before.get(f), change.after.get(f), f in change.lowering) for f in change.after]
    context = {"deployment": deployment, "change": change, "rows": rows}
    return render(request, "deployments/change_request.html", context)


class DecisionForm(forms.Form):
    reason = forms.CharField(max_length=2000, strip=True)


def _decision_view(service, done: str):
    @require_POST
    @role_required(Member.Role.ADMIN)
    def view(request: HttpRequest, slug: str, change_id: int) -> HttpResponse:
        deployment = deployment_visible_or_404(request, slug)
        change = _change(deployment, change_id)
        form = DecisionForm(request.POST)
        if not form.is_valid():
            messages.error(request, "A reason is required.")
        else:
            try:
                service(request_id=change.pk, actor=request.user, reason=form.cleaned_data["reason"])
                messages.success(request, done)
            except DomainError as exc:
                messages.error(request, exc.detail)
        return HttpResponseRedirect(reverse("deployments:change", args=[slug, change.pk]))

    return view


settings_change_approve_view = _decision_view(settings_change_approve, "Approved: the change applies now.")
settings_change_reject_view = _decision_view(settings_change_reject, "Rejected: nothing changed.")
