"""Demo data: one deployment per stage, one person per role, fresh API keys, some actions.

Safe to run again: existing deployments and people are kept; new API keys are printed.
"""

import random
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from deployments.models import Deployment
from deployments.services import api_key_create, deployment_create, member_create
from reviews.models import ProposedAction
from reviews.services import proposed_action_create

DEPLOYMENTS = [
    ("support-triage", "Support ticket triage", "shadow", ["ticket.route", "ticket.tag", "ticket.close"]),
    ("refunds", "Refunds", "approval", ["refund.issue", "refund.deny"]),
    ("invoice-matching", "Invoice matching", "supervised", ["invoice.match", "invoice.flag"]),
    ("password-resets", "Password resets", "autonomous", ["account.password_reset", "account.unlock"]),
]

PEOPLE = [
    ("admin", "admin", "admin-demo-pw"),
    ("admin2", "admin", "admin2-demo-pw"),
    ("senior", "senior", "senior-demo-pw"),
    ("reviewer", "reviewer", "reviewer-demo-pw"),
]


def _payload(action_type: str, rng: random.Random) -> dict:
    n = rng.randint(1000, 99999)
    if action_type.startswith("refund"):
        return {
            "order": f"ORD-{n}",
            "amount_cents": rng.choice([499, 1299, 4500, 12000, 80000]),
            "currency": "EUR",
        }
    if action_type.startswith("invoice"):
        return {
            "invoice": f"INV-{n}",
            "purchase_order": f"PO-{n // 3}",
            "amount_cents": rng.randint(1000, 500000),
        }
    if action_type.startswith("ticket"):
        return {"ticket": f"T-{n}", "queue": rng.choice(["billing", "tech", "sales"]), "tags": ["auto"]}
    return {"account": f"user{n}@example.com", "channel": rng.choice(["email", "sms"])}


class Command(BaseCommand):
    help = "Load demo data and print the sign-ins and API keys."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--actions", type=int, default=40, help="actions to propose per deployment")
        parser.add_argument("--seed", type=int, default=7)

    @transaction.atomic
    def handle(self, *args, actions: int, seed: int, **options) -> None:
        rng = random.Random(seed)
        deployments = {}
        for slug, name, stage, _types in DEPLOYMENTS:
            deployment = Deployment.objects.filter(slug=slug).first() or deployment_create(
                slug=slug, name=name, stage=stage, actor_label="load_demo"
            )
            deployments[slug] = deployment
        for username, role, password in PEOPLE:
            member_create(username=username, role=role, password=password, deployments=list(deployments.values()))

        keys = {}
        for slug, _name, _stage, types in DEPLOYMENTS:
            deployment = deployments[slug]
            _, keys[slug] = api_key_create(deployment=deployment, name="demo")
            if ProposedAction.objects.filter(deployment=deployment).exists():
                continue
            for i in range(actions):
                action_type = rng.choice(types)
                proposed_action_create(
                    deployment=deployment,
                    action_type=action_type,
                    payload=_payload(action_type, rng),
                    risk_score=round(rng.betavariate(2, 5), 3),
                    confidence=round(rng.betavariate(12, 1.2), 3),
                    external_id=f"{slug}-{i}",
                    model_version="demo-1",
                    rationale="Demo proposal.",
                    actor_label="load_demo",
                )

        demo_dir = Path(settings.BASE_DIR) / ".demo"
        demo_dir.mkdir(exist_ok=True)
        (demo_dir / "keys.env").write_text("".join(f"{slug}={key}\n" for slug, key in keys.items()))
        self.stdout.write(self.style.SUCCESS("\nTrustladder demo is ready: http://127.0.0.1:8000/"))
        self.stdout.write("\nSign in at http://127.0.0.1:8000/accounts/login/ as:")
        for username, role, password in PEOPLE:
            self.stdout.write(f"  {role:<9} {username:<9} password: {password}")
        self.stdout.write("\nAPI keys (new ones each run; also in .demo/keys.env):")
        for slug, key in keys.items():
            self.stdout.write(f"  {slug:<17} ({deployments[slug].stage:<10}) {key}")
        self.stdout.write(
            "\nTry: curl -s -X POST http://127.0.0.1:8000/api/v1/actions "
            f"-H 'Authorization: Bearer {keys['invoice-matching']}' -H 'Content-Type: application/json' "
            """-d '{"action_type":"invoice.match","payload":{"invoice":"INV-1"},"""
            """"risk_score":0.1,"confidence":0.99}'\n"""
        )
