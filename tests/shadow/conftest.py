import pytest
from django.db.models import Sum

from deployments.models import EvidenceCount
from deployments.services import api_key_create
from tests.conftest import ApiClient
from tests.factories import DeploymentFactory


@pytest.fixture
def deployment(db):
    return DeploymentFactory(stage="shadow")


class CommittingApi:
    """The JSON API client, with on-commit callbacks (the enqueued compare tasks, eager without
    Redis) run when each request's transaction commits, as they do outside the test transaction.

    Outcomes go with `recorder`, a key of scope `outcomes` (the system of record), the rest
    with the agent's key of scope `propose`, as in production."""

    def __init__(self, client: ApiClient, capture, recorder: ApiClient | None = None) -> None:
        self.client, self.capture, self.recorder = client, capture, recorder or client

    def post(self, path: str, *args, **kwargs):
        client = self.recorder if path.startswith("/api/v1/outcomes") else self.client
        with self.capture(execute=True):
            return client.post(path, *args, **kwargs)

    def get(self, *args, **kwargs):
        return self.client.get(*args, **kwargs)


@pytest.fixture
def outcomes_key(deployment) -> str:
    _, raw = api_key_create(deployment=deployment, name="system of record", scopes=["outcomes"])
    return raw


@pytest.fixture
def api(api_key, outcomes_key, django_capture_on_commit_callbacks) -> CommittingApi:
    return CommittingApi(ApiClient(api_key), django_capture_on_commit_callbacks, ApiClient(outcomes_key))


@pytest.fixture(autouse=True)
def eager_celery(request):
    """Tasks run in-process here (as with no REDIS_URL); the worker test opts out with the
    `broker` marker: its tasks go to Redis (and a real worker, where it starts one)."""
    from config.celery_app import app

    if request.node.get_closest_marker("broker"):
        yield
        return
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium (RECIPES.md); TRUSTLADDER_CHROMIUM overrides the path."""
    import os

    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("TRUSTLADDER_CHROMIUM", "/usr/bin/chromium"),
        "args": [*browser_type_launch_args.get("args", []), "--disable-gpu", "--disable-quic"],
    }


def counters(deployment) -> tuple[int, int]:
    """(shadow.agree, shadow.disagree) summed over the deployment's evidence counters."""
    sums = dict(
        EvidenceCount.objects.filter(deployment=deployment, metric__in=["shadow.agree", "shadow.disagree"])
        .values_list("metric")
        .annotate(s=Sum("n"))
    )
    return sums.get("shadow.agree", 0), sums.get("shadow.disagree", 0)
