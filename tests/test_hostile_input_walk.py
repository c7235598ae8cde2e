"""Issue 15 item 6: never a 500 for what a person or an agent sends.

Walks EVERY URL of the URL conf (django.urls' resolver; the agent API through its OpenAPI
document), every query parameter and form field each view reads, as each role (reviewer,
senior, admin, anonymous), with hostile values: NUL, lone surrogates, nesting 900 and 5000 deep,
1e400, huge integers, bad keyset cursors, very long strings, out-of-range ids in the path. It
asserts no 5xx; for the values that must be refused (NUL, over-long, and in JSON fields and API
bodies anything outside core.jsonlimits) that nothing was stored.

Coverage is checked, not assumed: a URL missing from PAGES/API_BODIES fails the test, and so
does a parameter a view reads (recorded as it runs) or a field a page's form sends that is not
declared here, so a new view, parameter or form field is walked from the day it is added.
Every request runs in a savepoint that is rolled back, so each starts from the same rows.
"""

import contextlib
import copy
import json
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlencode, urlsplit

import pytest
from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.http import QueryDict
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from config.api import api as ninja_api
from deliveries.models import Delivery
from deployments.models import Delegation, Deployment, Member, PromotionRequest, SettingsChangeRequest
from deployments.services import api_key_create
from reviews.canonical import payload_sha256
from reviews.models import ProposedAction
from reviews.shadow.models import ShadowOutcome, ShadowRecompute
from tests.deliveries.factories import DeliveryFactory
from tests.factories import DeploymentFactory, MemberFactory, ProposedActionFactory

pytestmark = pytest.mark.django_db

# Pages: URL name -> the query parameters (GET) and form fields (POST) it reads, each with a
# benign value, so that a hostile value in one of them meets the code past the others.
PAGES: dict[str, dict[str, dict[str, str]]] = {
    "healthz": {"GET": {}},
    "metrics": {"GET": {}},
    "login": {"GET": {"next": "/queue/"}, "POST": {"username": "nobody", "password": "wrong", "next": "/queue/"}},
    "logout": {"POST": {"next": "/"}},
    "home": {"GET": {}},
    "docs": {"GET": {}},
    "integrations:slack_interactions": {"POST": {"payload": "{}"}},
    "reviews:queue": {"GET": {"deployment": "{deployment_id}", "action_type": "refund.issue", "after": ""}},
    "reviews:senior_queue": {"GET": {"deployment": "{deployment_id}", "action_type": "refund.issue", "after": ""}},
    "reviews:audit_queue": {"GET": {"deployment": "{deployment_id}", "action_type": "refund.issue", "after": ""}},
    "reviews:claim_next": {
        "POST": {"queue": "review", "deployment": "{deployment_id}", "action_type": "", "skip": "{pending}"}
    },
    "reviews:nav_counts": {"GET": {}},
    "reviews:action_detail": {"GET": {}},
    "reviews:decide": {"POST": {"decision": "approve", "reason": "fine", "payload": "", "confirm": "1"}},
    "reviews:audit_verdict": {"POST": {"verdict": "incorrect", "reason": "wrong"}},
    "reviews:blind_answer": {"POST": {"decision": "approve", "payload": '{"order": "A-1"}', "reason": "no"}},
    "reviews:claim": {"POST": {}},
    "reviews:release": {"POST": {"quiet": "1"}},
    "reviews:reconcile": {"POST": {"committed": "0", "reason": "not in the ledger"}},
    "shadow:report": {"GET": {}},
    "shadow:disagreements": {"GET": {"before": "", "open": "1"}},
    "shadow:adjudicate": {"POST": {"verdict": "ai_right", "reason": "ok", "open": "1"}},
    "shadow:rules": {"GET": {}, "POST": {"rules": '{"ignore": ["note"]}'}},
    "shadow:recompute": {"POST": {}},
    "shadow:recompute_progress": {"GET": {}},
    "deployments:list": {"GET": {}},
    "deployments:detail": {"GET": {}},
    "deployments:gate": {"GET": {"action_type": ""}},
    "deployments:calibration": {"GET": {"action_type": "", "days": "30"}},
    "deployments:reviewers": {"GET": {"days": "30"}},
    # Settings: a preview (nothing saved), so a benign value can be walked past the others.
    "deployments:settings": {
        "GET": {"auto_min_confidence": ""},
        "POST": {
            "auto_max_risk": "0.2",
            "auto_min_confidence": "0.9",
            "review_max_risk": "0.7",
            "audit_sample_rate": "0.1",
            "review_sla": "04:00:00",
            "senior_sla": "08:00:00",
            "stage_caps": "{}",
            "gate_criteria": "{}",
            "breaker_settings": "{}",
            "blast_max_auto": "",
            "blast_max_value": "",
            "blast_value_field": "",
            "blast_window": "01:00:00",
            "payload_rules": "{}",
            "recertify_demotes": "",
            "reason": "tighter",
            "preview": "1",
        },
    },
    "deployments:change": {"GET": {}},
    "deployments:change_approve": {"POST": {"reason": "checked the replay"}},
    "deployments:change_reject": {"POST": {"reason": "not now"}},
    "deployments:promotion_request": {"POST": {"to_stage": "autonomous", "action_type": "", "reason": "ready"}},
    "deployments:promotion_decide": {"POST": {"decision": "reject", "reason": "not yet", "action_type": ""}},
    "deployments:demote": {"POST": {"to_stage": "shadow", "action_type": "", "reason": "drill"}},
    "deployments:pause": {"POST": {"reason": "drill"}},
    "deployments:resume": {"POST": {"reason": "drill"}},
    "deployments:breaker_reset": {"POST": {"reason": "drill"}},
    "deployments:audit_log": {
        "GET": {"deployment": "{slug}", "actor": "", "verb": "", "format": "", "before": ""},
    },
    # Out of office (deployments.delegations): a member for themselves; `delegator` is an admin's.
    "deployments:away": {
        "GET": {},
        "POST": {
            "delegator": "",
            "delegate": "{delegate}",
            "starts_at": "2030-01-01T09:00",
            "ends_at": "2030-01-05T09:00",
            "note": "conference",
        },
    },
    "deployments:away_cancel": {"POST": {}},
    "deliveries:list": {"GET": {"deployment": "{slug}"}},
    "deliveries:detail": {"GET": {}},
    "deliveries:redeliver": {"POST": {"next": "detail", "deployment": "{slug}"}},
    "deliveries:rotate_secret": {"POST": {}},
}
# Fields whose text is JSON: the JSON hostile values must be refused there, not only survived.
JSON_FIELDS = {
    ("reviews:decide", "payload"),
    ("reviews:blind_answer", "payload"),
    ("shadow:rules", "rules"),
    *(("deployments:settings", f) for f in ("stage_caps", "gate_criteria", "breaker_settings", "payload_rules")),
}
# Read by the framework, not by a view (CSRF, the login view's redirect target).
FRAMEWORK_KEYS = {"csrfmiddlewaretoken", "next", "ip_address"}
# The agent API: URL name -> a benign JSON body (None: no body). Its parameters and body fields
# come from the OpenAPI document.
API_BODIES = {
    "api:openapi-json": None,
    "api:openapi-view": None,
    "api:api-root": None,
    "api:action_create": {
        "action_type": "refund.issue",
        "payload": {"order": "A-1"},
        "risk_score": 0.5,
        "confidence": 0.5,
    },
    "api:action_detail": None,
    "api:action_result": {"status": "failed", "payload_sha256": "{sha}", "error": "", "claim_key": "k"},
    "api:action_claim": {"claim_key": "k", "payload_sha256": "{sha}"},
    "api:action_reconcile": {"committed": False, "reason": "not in the ledger"},
    "api:action_cancel": {"reason": "changed my mind"},
    "api:actions_batch": {
        "run_id": "run-1",
        "run_hold": False,
        "actions": [{"action_type": "refund.issue", "payload": {"order": "A-1"}, "risk_score": 0.5, "confidence": 0.5}],
    },
    "api:deployment_detail": None,
    "api:deployment_evidence": None,
    "api:deployment_simulate": None,
    "api:outcomes_create": {"external_id": "o-1", "action_type": "refund.issue", "payload": {"order": "A-1"}},
}
# Path kwargs -> the fixture object they name, per URL where it matters.
KWARG_OBJECTS = {
    "action_id": "pending",
    "slug": "slug",
    "request_id": "promotion",
    "recompute_id": "recompute",
    "change_id": "change",
    "name": "doc",
    "delegation_id": "delegation",
}
KWARG_OVERRIDES = {
    ("reviews:audit_verdict", "action_id"): "audit_sample",
    ("shadow:adjudicate", "action_id"): "shadow",
    ("deliveries:detail", "delivery_id"): "delivery",
    ("deliveries:redeliver", "delivery_id"): "delivery",
}

JSON = "application/json"
DEEP_5000 = "[" * 5000 + "]" * 5000
DEEP_900 = '{"a":' * 900 + "1" + "}" * 900
LONG = "x" * 300_000
# Refused wherever they appear: nothing stored.
REFUSED = ["a\x00b", LONG]
# Refused in a JSON field; elsewhere odd text that must merely not break anything.
JSON_HOSTILE = [
    DEEP_5000,
    DEEP_900,
    '{"x": 1e400}',
    '{"x": "\\ud800"}',
    '{"x": "a\\u0000b"}',
    f'{{"x": {2**64}}}',
    '{"x": NaN}',
    '{"x": [' * 70 + "]" * 70 + "}",
]
ODD = [
    "\ud800",  # sent as the bytes %ED%A0%80: Django decodes them with a replacement character
    "1e400",
    "9" * 400,
    "-1",
    "0",
    "2026-01-01T00:00:00+23:59~1",  # keyset cursors: offsets PostgreSQL refuses, ids past 64 bits
    "9999-12-31T23:59:59-14:00_1",
    "0001-01-01T00:00:00+14:00~1",
    "2026-01-01T00:00:00+00:00~99999999999999999999",
    "2026-01-01T00:00:00+00:00_²",
    "²",
    "<script>alert(1)</script>",
    DEEP_5000,  # as text, outside a JSON field
]
HOSTILE_IDS = ["99999999999999999999", "9223372036854775808", "0"]
HOSTILE_SLUGS = ["a" * 5000, "-"]
# For the API's JSON bodies: every one is outside core.jsonlimits or the field's type.
API_HOSTILE = [
    "a\x00b",
    "\ud800",
    json.loads("[" * 65 + "]" * 65),
    -(2**60),
    2**64,
    "LONG",  # replaced by a string over the path's body limit
]
API_HOSTILE_RAW = ["NaN", "1e400", "-1e400", "1" + "0" * 400, "[" * 5000 + "]" * 5000, '"\\udfff"', '{"k\\u0000": 1}']


def _walk(resolver, prefix="", namespace=""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            ns = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from _walk(pattern, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern):
            name = namespace + pattern.name if pattern.name else None
            yield prefix + str(pattern.pattern), name, pattern


def all_urls() -> list[tuple[str, str, URLPattern]]:
    """Every URL of the URL conf but Django's own admin (its own forms; NUL is refused there
    by the same middleware, test_admin_changelist_search_survives below)."""
    return [u for u in _walk(get_resolver()) if not u[0].startswith("admin/")]


@pytest.fixture
def world():
    deployment = DeploymentFactory(stage="supervised", slug="walk", api_rate_limit=0)  # 0: no rate limit
    people = {
        role: MemberFactory(role=role, deployments=[deployment])
        for role in (Member.Role.REVIEWER, Member.Role.SENIOR, Member.Role.ADMIN)
    }
    people[Member.Role.ADMIN].user.is_staff = True
    people[Member.Role.ADMIN].user.save()
    other_admin = MemberFactory(role=Member.Role.ADMIN)
    pending = ProposedActionFactory(deployment=deployment)
    audit_sample = ProposedActionFactory(
        deployment=deployment, status="approved", route="auto", audit_sample=True, expires_at=None
    )
    audit_sample.final_payload = audit_sample.payload
    audit_sample.payload_sha256 = payload_sha256(audit_sample.payload)
    audit_sample.save()
    shadow = ProposedActionFactory(
        deployment=deployment,
        status="compared",
        route="shadow",
        external_id="s-1",
        expires_at=None,
        comparison={"agree": False, "diff": [{"path": "order", "ai": "A-1", "human": "A-2"}]},
    )
    ShadowOutcome.objects.create(deployment=deployment, external_id="s-1", action_type="refund.issue", payload={})
    promotion = PromotionRequest.objects.create(
        deployment=deployment,
        from_stage="supervised",
        to_stage="autonomous",
        requested_by=other_admin.user,
        evidence={},
    )
    recompute = ShadowRecompute.objects.create(deployment=deployment, status="done")
    change = SettingsChangeRequest.objects.create(
        deployment=deployment,
        before={"auto_max_risk": deployment.auto_max_risk},
        after={"auto_max_risk": min(1.0, deployment.auto_max_risk + 0.1)},
        lowering=["auto_max_risk"],
        requested_by=other_admin.user,
        request_reason="more auto",
    )
    delivery = DeliveryFactory(deployment=deployment)
    now = timezone.now()
    delegation = Delegation.objects.create(
        delegator=people[Member.Role.SENIOR],
        delegate=other_admin,
        starts_at=now + timedelta(days=10),
        ends_at=now + timedelta(days=12),
        created_by=people[Member.Role.SENIOR].user,
    )
    _, key = api_key_create(deployment=deployment)
    objects = {
        "pending": pending.pk,
        "audit_sample": audit_sample.pk,
        "shadow": shadow.pk,
        "promotion": promotion.pk,
        "recompute": recompute.pk,
        "change": change.pk,
        "delivery": delivery.pk,
        "delegation": delegation.pk,
        "slug": deployment.slug,
        "doc": "gate",
    }
    fill = {
        "deployment_id": str(deployment.pk),
        "slug": deployment.slug,
        "sha": audit_sample.payload_sha256,
        "pending": str(pending.pk),
        "delegate": str(other_admin.pk),
    }
    return {"people": people, "objects": objects, "fill": fill, "key": key, "pending": pending}


def clients(world) -> dict[str, Client]:
    made = {"anonymous": Client(raise_request_exception=False)}
    for role, member in world["people"].items():
        client = Client(raise_request_exception=False)
        client.force_login(member.user)
        made[str(role)] = client
    return made


def kwargs_for(name: str, pattern: URLPattern, objects: dict) -> dict:
    kwargs = {}
    for kwarg in pattern.pattern.converters:
        key = KWARG_OVERRIDES.get((name, kwarg)) or KWARG_OBJECTS.get(kwarg)
        assert key is not None, f"{name}: no fixture object for the path parameter {kwarg!r}; add it to KWARG_OBJECTS"
        kwargs[kwarg] = objects[key]
    return kwargs


def path_for(route: str, kwargs: dict) -> str:
    """The URL of `route` (the pattern's text) with its kwargs filled in, unchecked by the
    converters' reverse (so that hostile ids can be placed too)."""
    path = route
    for kwarg, value in kwargs.items():
        for converter in ("int", "slug", "str", ""):
            path = path.replace(f"<{converter}:{kwarg}>" if converter else f"<{kwarg}>", str(value))
    return "/" + path


# -- recording what views read ------------------------------------------------------------


class Reads:
    keys: set[str] | None = None


@contextlib.contextmanager
def recording_reads():
    """Record every key looked up in a QueryDict (request.GET / request.POST and form data)."""
    seen: set[str] = set()
    originals = {name: getattr(QueryDict, name) for name in ("get", "__getitem__", "getlist", "__contains__")}

    def wrap(name):
        original = originals[name]

        def recorded(self, key, *args, **kwargs):
            seen.add(key)
            return original(self, key, *args, **kwargs)

        return recorded

    for name in originals:
        setattr(QueryDict, name, wrap(name))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(QueryDict, name, original)


class FormFields(HTMLParser):
    """(method, action, field names) of every form of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str, set[str]]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append((attrs.get("method", "get").upper(), attrs.get("action") or "", set()))
        elif tag in ("input", "textarea", "select", "button") and self.forms and attrs.get("name"):
            self.forms[-1][2].add(attrs["name"])


# -- what "nothing stored" means ------------------------------------------------------------


def snapshot() -> tuple:
    """Row counts of every model of our apps, and the mutable state of actions and deployments."""
    counts = tuple(
        (model._meta.label, model._default_manager.count())
        for app in ("deployments", "reviews", "deliveries")
        for model in apps.get_app_config(app).get_models()
    )
    actions = tuple(
        ProposedAction.objects.order_by("pk").values_list("pk", "status", "claimed_by_id", "reason", "audit_verdict")
    )
    deployments = tuple(
        Deployment.objects.order_by("pk").values_list(
            "pk", "stage", "paused", "breaker_tripped_at", "comparison_rules", "webhook_secret"
        )
    )
    deliveries = tuple(Delivery.objects.order_by("pk").values_list("pk", "status", "next_attempt_at"))
    return counts, actions, deployments, deliveries


class Walk:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.requests = 0

    def send(
        self, client: Client, method: str, path: str, data, *, refused: bool, what: str, api: bool = False, **extra
    ):
        """One request in a savepoint rolled back afterwards; a 5xx (or, for a value to refuse,
        any stored change) is a failure."""
        self.requests += 1
        # The session cookie as it was: a request that signs out (or in) is rolled back in the
        # database, and its cookies with it, so the next request is made as the same person.
        cookies = copy.deepcopy(client.cookies)
        with transaction.atomic():
            before = snapshot() if refused else None
            if method == "GET":
                query = urlencode(data or {}, doseq=True, encoding="utf-8", errors="surrogatepass")
                response = client.get(path, QUERY_STRING=query, **extra)
            elif "content_type" in extra:
                response = client.post(path, data=data, **extra)
            else:
                body = urlencode(data or {}, doseq=True, encoding="utf-8", errors="surrogatepass")
                response = client.post(path, data=body, content_type="application/x-www-form-urlencoded", **extra)
            if response.status_code >= 500:
                self.failures.append(f"{response.status_code} {what}")
            elif refused and response.status_code == 429:
                self.failures.append(f"429 (throttled: the walk would not reach the view) {what}")
            elif refused and api and response.status_code < 400:
                self.failures.append(f"accepted ({response.status_code}) {what}")
            elif refused and snapshot() != before:
                self.failures.append(f"stored something: {what} ({response.status_code})")
            transaction.set_rollback(True)
        client.cookies = cookies
        return response


def _fill(text: str, values: dict) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:40] + f"…({len(text)} chars)"


# -- the walk ------------------------------------------------------------------------------


def test_every_url_is_declared_here():
    names = {name for _, name, _ in all_urls()}
    assert None not in names, "every URL needs a name to be walked"
    undeclared = names - set(PAGES) - set(API_BODIES)
    assert not undeclared, (
        f"new URLs not walked by this test: {sorted(undeclared)}; declare them in PAGES or API_BODIES"
    )
    assert not (set(PAGES) | set(API_BODIES)) - names, "declared URLs that no longer exist"


def test_pages_take_every_hostile_value_without_a_5xx_and_store_nothing_they_refuse(world):
    walk = Walk()
    people = clients(world)
    read: dict[tuple[str, str], set[str]] = {}
    urls = [u for u in all_urls() if u[1] in PAGES]
    for route, name, pattern in urls:
        kwargs = kwargs_for(name, pattern, world["objects"])
        path = path_for(route, kwargs)
        for method, declared in PAGES[name].items():
            benign = {k: _fill(v, world["fill"]) for k, v in declared.items()}
            for role, client in people.items():
                # The benign request, recording what the view reads.
                with recording_reads() as seen:
                    walk.send(client, method, path, benign, refused=False, what=f"{role} {method} {path} benign")
                read.setdefault((name, method), set()).update(seen)
                for field in declared:
                    values = [(v, True) for v in REFUSED]
                    # Anonymous is sent to the sign-in page whatever it sends; a senior reaches
                    # no view the admin does not, so the odd values are walked as reviewer and admin.
                    if role in (str(Member.Role.REVIEWER), str(Member.Role.ADMIN)):
                        values += [(v, False) for v in ODD]
                        if (name, field) in JSON_FIELDS:
                            values += [(v, True) for v in JSON_HOSTILE]
                    for value, refused in values:
                        data = {**benign, field: value}
                        what = f"{role} {method} {path} {field}={_short(value)}"
                        walk.send(client, method, path, data, refused=refused, what=what)
                # An unknown parameter with a hostile name and value.
                walk.send(client, method, path, {**benign, "x\x00": "y"}, refused=True, what=f"{role} {path} NUL key")
            # Hostile path parameters (the admin, who may reach every view).
            admin = people[str(Member.Role.ADMIN)]
            for kwarg in pattern.pattern.converters:
                hostile = HOSTILE_SLUGS if kwarg == "slug" else HOSTILE_IDS
                for value in hostile:
                    bad_path = path_for(route, {**kwargs, kwarg: value})
                    walk.send(admin, method, bad_path, benign, refused=True, what=f"admin {method} {bad_path[:80]}")
    assert not walk.failures, f"{len(walk.failures)} of {walk.requests} requests failed:\n" + "\n".join(
        walk.failures[:60]
    )
    # Coverage: every key a view read is declared (so it was walked).
    unread = {
        (name, method): sorted(keys - set(PAGES[name][method]) - FRAMEWORK_KEYS)
        for (name, method), keys in read.items()
        if keys - set(PAGES[name][method]) - FRAMEWORK_KEYS
    }
    assert not unread, f"views read parameters this test does not walk: {unread}"


def test_every_form_field_a_page_sends_is_walked(world):
    """Every form of every page (as the admin, who sees the most) posts only declared fields."""
    admin = clients(world)[str(Member.Role.ADMIN)]
    undeclared = {}
    for route, name, pattern in all_urls():
        if name not in PAGES or "GET" not in PAGES[name]:
            continue
        response = admin.get(path_for(route, kwargs_for(name, pattern, world["objects"])))
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        parser = FormFields()
        parser.feed(response.content.decode())
        for method, action, fields in parser.forms:
            target = resolve(urlsplit(action).path or response.request["PATH_INFO"]).view_name
            declared = set(PAGES.get(target, {}).get(method, {}))
            missing = fields - declared - FRAMEWORK_KEYS
            if missing:
                undeclared[(name, target, method)] = sorted(missing)
    assert not undeclared, f"form fields not walked: {undeclared}"


def _api_operations() -> dict[str, tuple[str, str, dict]]:
    """url name -> (method, path template, operation) from the OpenAPI document."""
    schema = ninja_api.get_openapi_schema()
    by_path = {}
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            by_path[(path, method.upper())] = operation
    return schema, by_path


def test_the_api_takes_every_hostile_value_without_a_5xx_and_stores_nothing(world):
    walk = Walk()
    key = world["key"]
    anonymous = Client(raise_request_exception=False)
    agent = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {key}")
    schema, operations = _api_operations()
    names = {name: route for route, name, _ in all_urls() if name in API_BODIES}
    for name, route in names.items():
        path = "/" + route.replace("<action_id>", str(world["objects"]["pending"]))
        benign = API_BODIES[name]
        if benign is not None:
            benign = json.loads(json.dumps(benign).replace("{sha}", world["fill"]["sha"]))
        method = "POST" if benign is not None else "GET"
        for client, who in ((agent, "agent"), (anonymous, "anonymous")):
            if benign is None:
                walk.send(client, "GET", path, {}, refused=True, what=f"{who} GET {path}")
            else:
                body = json.dumps(benign)
                walk.send(
                    client, "POST", path, body, refused=False, what=f"{who} {path}", content_type="application/json"
                )
        operation = operations.get(("/" + route.replace("<action_id>", "{action_id}"), method))
        parameters = (operation or {}).get("parameters", [])
        for parameter in parameters:
            for value in [*REFUSED, *ODD, *HOSTILE_IDS]:
                if parameter["in"] == "query":
                    walk.send(
                        agent,
                        method,
                        path,
                        {parameter["name"]: value},
                        refused=True,
                        what=f"{path}?{parameter['name']}",
                    )
                elif parameter["in"] == "path" and isinstance(value, str) and value in HOSTILE_IDS + ["-1", "9" * 400]:
                    bad = "/" + route.replace("<action_id>", value)
                    walk.send(
                        agent,
                        method,
                        bad,
                        {} if method == "GET" else json.dumps(benign),
                        refused=True,
                        what=f"{bad[:80]}",
                        **({} if method == "GET" else {"content_type": "application/json"}),
                    )
        if benign is None:
            continue
        for field, good in benign.items():
            # The hostile value as the field, and (for an object, a payload) inside it.
            placements = [lambda v, field=field, benign=benign: {**benign, field: v}]
            if isinstance(good, dict):
                placements.append(lambda v, f=field, g=good, b=benign: {**b, f: {**g, "x": v}})
            for place in placements:
                for value in API_HOSTILE:
                    if value == "LONG":
                        value = "x" * (settings.API_BODY_LIMITS.get(path, settings.API_MAX_BODY_BYTES) + 1)
                    body = json.dumps(place(value), ensure_ascii=True)
                    what = f"agent POST {path} {field}={_short(place(value)[field])}"
                    walk.send(
                        agent, "POST", path, body, refused=True, api=True, what=what, content_type="application/json"
                    )
                for raw in API_HOSTILE_RAW:
                    doc = json.dumps(place("@@")).replace('"@@"', raw)
                    what = f"agent POST {path} {field}~{_short(raw)}"
                    walk.send(
                        agent, "POST", path, doc, refused=True, api=True, what=what, content_type="application/json"
                    )
    assert operations, "the OpenAPI document lists no operations"
    assert not walk.failures, f"{len(walk.failures)} of {walk.requests} requests failed:\n" + "\n".join(
        walk.failures[:60]
    )


def test_admin_changelist_search_survives(world):
    admin = world["people"][Member.Role.ADMIN]
    admin.user.is_superuser = True
    admin.user.save()
    client = Client(raise_request_exception=False)
    client.force_login(admin.user)
    walk = Walk()
    for url in ("/admin/reviews/proposedaction/", "/admin/deployments/auditevent/", "/admin/deliveries/delivery/"):
        for value in [*REFUSED, *ODD]:
            walk.send(
                client, "GET", url, {"q": value, "p": value, "o": value}, refused=True, what=f"{url} q={_short(value)}"
            )
    assert not walk.failures, "\n".join(walk.failures)
