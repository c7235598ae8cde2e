"""deployments/permissions.py: the one rule of which deployments a member works on."""

import pytest

from deployments.errors import NotAllowed
from deployments.models import AuditEvent, Deployment, Member
from deployments.permissions import (
    deployments_visible_to,
    limit_to_visible,
    may_act_on,
    member_of,
    require_admin,
    require_assigned,
    visible_deployment_ids,
)
from deployments.services import audit_event_record
from tests.factories import DeploymentFactory, MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two(deployment):
    return deployment, DeploymentFactory()


@pytest.mark.parametrize("role", [Member.Role.REVIEWER, Member.Role.SENIOR])
def test_reviewers_and_seniors_work_on_their_assigned_deployments_only(two, role):
    mine, other = two
    member = MemberFactory(role=role, deployments=[mine])
    assert list(deployments_visible_to(member)) == [mine]
    assert visible_deployment_ids(member) == [mine.pk]
    assert may_act_on(member, mine.pk) and not may_act_on(member, other.pk)
    assert require_assigned(member, mine.pk) == member
    with pytest.raises(NotAllowed, match="you are not assigned to this deployment"):
        require_assigned(member, other.pk)


def test_admins_work_on_every_deployment_without_a_query(two, admin, django_assert_num_queries):
    assert set(deployments_visible_to(admin)) == set(Deployment.objects.all()) == set(two)
    with django_assert_num_queries(0):
        assert visible_deployment_ids(admin) is None
        assert all(may_act_on(admin, d.pk) for d in two)
        assert require_assigned(admin, two[1].pk) == admin


def test_no_member_is_refused_with_the_callers_words(deployment):
    with pytest.raises(NotAllowed, match="only members may do this"):
        require_assigned(None, deployment.pk)
    with pytest.raises(NotAllowed, match="only members may decide actions"):
        require_assigned(None, deployment.pk, who="only members may decide actions")


def test_limit_to_visible_keeps_an_admins_rows_of_no_deployment(two, admin):
    mine, other = two
    reviewer = MemberFactory(role=Member.Role.REVIEWER, deployments=[mine])
    for d in (mine, other, None):
        audit_event_record(verb="test.event", deployment=d)
    events = AuditEvent.objects.filter(verb="test.event")
    assert {e.deployment_id for e in limit_to_visible(events, admin)} == {mine.pk, other.pk, None}
    assert {e.deployment_id for e in limit_to_visible(events, reviewer)} == {mine.pk}


def test_require_admin_and_member_of(reviewer, admin, django_user_model):
    assert member_of(None) is None and member_of(admin.user) == admin
    assert member_of(django_user_model.objects.create(username="nobody")) is None
    assert require_admin(admin.user, "pause") == admin
    with pytest.raises(NotAllowed, match="only admins may pause"):
        require_admin(reviewer.user, "pause")
