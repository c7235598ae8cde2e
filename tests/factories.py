from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from deployments.models import Deployment, Member
from reviews.canonical import payload_sha256
from reviews.models import ProposedAction


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    slug = factory.Sequence(lambda n: f"deployment-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    stage = "supervised"
    webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class MemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Member
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    role = Member.Role.REVIEWER

    @factory.post_generation
    def deployments(obj, create, extracted, **kwargs):  # noqa: N805
        if create and extracted:
            obj.deployments.add(*extracted)


class ProposedActionFactory(factory.django.DjangoModelFactory):
    """A pending-review action, built directly (bypassing routing) for queue and lifecycle tests."""

    class Meta:
        model = ProposedAction

    deployment = factory.SubFactory(DeploymentFactory)
    action_type = "refund.issue"
    payload = factory.Sequence(lambda n: {"amount_cents": 100 + n, "order": f"A-{n}"})
    proposal_sha256 = factory.LazyAttribute(lambda o: payload_sha256(o.payload))
    risk_score = 0.5
    confidence = 0.9
    stage = "supervised"
    route = "review"
    status = ProposedAction.Status.PENDING_REVIEW
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=24))


def action_propose(deployment, **fields) -> "ProposedAction":
    """`proposed_action_create` with SPEC §5's fields and the service's options as keywords alike
    (tests only): the fields go into the `Proposal`, the rest are passed on."""
    from dataclasses import fields as dataclass_fields

    from reviews.services import Proposal, proposed_action_create

    names = {f.name for f in dataclass_fields(Proposal)}
    proposal = Proposal(**{k: v for k, v in fields.items() if k in names})
    options = {k: v for k, v in fields.items() if k not in names}
    return proposed_action_create(deployment=deployment, proposal=proposal, **options)
