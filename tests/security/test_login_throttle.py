"""Login throttling (django-axes): repeated failures lock the (username, address) pair out."""

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "right-horse-battery-staple"


@pytest.fixture
def user():
    user = UserFactory(username="rita")
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(client: Client, password: str, *, address: str = "203.0.113.7", username: str = "rita"):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address, follow=False
    )


def test_repeated_failures_lock_out_even_the_right_password(user):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = sign_in(client, "wrong")
        assert response.status_code == 200  # the form again, with its error
        assert b"didn&#x27;t match" in response.content or b"didn't match" in response.content
    locked = sign_in(client, "wrong")
    assert locked.status_code == 429
    assert b"Sign-in locked" in locked.content
    assert b"Too many failed sign-ins" in locked.content

    # Locked: the right password is refused too, and no session is made.
    again = sign_in(client, PASSWORD)
    assert again.status_code == 429 and b"Too many failed sign-ins" in again.content
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.get(username="rita").failures_since_start >= settings.AXES_FAILURE_LIMIT


def test_the_lock_holds_only_for_that_username_and_address(user):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "wrong")
    assert sign_in(client, PASSWORD).status_code == 429
    # Another address may still sign in as rita (no one can lock a user out from afar) ...
    assert sign_in(Client(), PASSWORD, address="198.51.100.9").status_code == 302
    # ... and rita's lock does not lock another user at the same address.
    otto = UserFactory(username="otto")
    otto.set_password(PASSWORD)
    otto.save()
    assert sign_in(Client(), PASSWORD, username="otto").status_code == 302


def test_a_successful_sign_in_resets_the_count(user):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "wrong")
    assert sign_in(client, PASSWORD).status_code == 302
    # The count started afresh: the limit minus one failures again do not lock.
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(Client(), "wrong").status_code == 200
    assert sign_in(Client(), PASSWORD).status_code == 302


def test_the_test_clients_login_still_works_without_a_request(user):
    """authenticate() without a request (our own code) is not throttled and does not raise."""
    assert Client().login(username="rita", password=PASSWORD)
