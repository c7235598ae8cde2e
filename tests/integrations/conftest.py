import pytest


@pytest.fixture(autouse=True)
def eager_celery():
    """Tasks run in-process on commit here (as with no REDIS_URL); a test that needs a real
    worker starts one (tests.deliveries.support.Worker) with the `broker` marker."""
    from config.celery_app import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before
