import pytest


@pytest.fixture(autouse=True)
def eager_celery(request):
    """Tasks run in-process on commit here (as with no REDIS_URL); a test with the `broker`
    marker sends them to Redis, for a real worker (tests.deliveries.support.Worker)."""
    from config.celery_app import app

    if request.node.get_closest_marker("broker"):
        yield
        return
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before
