"""Demo data: one deployment per stage, one person per role, fresh API keys, some actions.

Safe to run again: existing deployments and people are kept; new API keys are printed.
`--reset` empties the database first, so the demo starts afresh.
"""

from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from deployments.models import Deployment
from deployments.services import api_key_create, deployment_create, member_create
from reviews.demo.load import demo_deployment_create, load_history

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
# More people who decided things in the history (they cannot sign in: no password).
COLLEAGUES = [("priya", "reviewer"), ("tomas", "reviewer"), ("mei", "senior")]


class Command(BaseCommand):
    help = "Load demo data and print the sign-ins and API keys."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=60, help="days of history to write on first load")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--reset", action="store_true", help="empty the database first (every table)")
        parser.add_argument(
            "--base-url", default="http://127.0.0.1:8000", help="the address the demo serves, for the printed links"
        )

    def handle(self, *args, days: int, seed: int, reset: bool, base_url: str, **options) -> None:
        if reset:
            self.stdout.write("Emptying the database (--reset) ...")
            call_command("flush", interactive=False, verbosity=0)
        self._load(days=days, seed=seed, base_url=base_url.rstrip("/"))

    @transaction.atomic
    def _load(self, *, days: int, seed: int, base_url: str) -> None:
        fresh = not Deployment.objects.filter(slug__in=[d[0] for d in DEPLOYMENTS]).exists()
        deployments = {}
        for slug, name, stage, _types in DEPLOYMENTS:
            if fresh:  # its creation event is dated with the history, at its birth
                deployment = demo_deployment_create(slug=slug, name=name, stage=stage)
            else:
                deployment = Deployment.objects.filter(slug=slug).first() or deployment_create(
                    slug=slug, name=name, stage=stage, actor_label="load_demo"
                )
            deployments[slug] = deployment
        members = {}
        for username, role, password in PEOPLE:
            members[username] = member_create(
                username=username, role=role, password=password, deployments=list(deployments.values())
            )
        for username, role in COLLEAGUES:
            members[username] = member_create(username=username, role=role, deployments=list(deployments.values()))

        if fresh:
            self.stdout.write(f"Writing {days} days of history (once; about a minute on SQLite) ...")
            self.stdout.flush()
            summary = load_history(
                deployments=deployments,
                reviewers=[members[u].user for u in ("reviewer", "priya", "tomas")],
                seniors=[members[u].user for u in ("senior", "mei")],
                days=days,
                seed=seed,
                progress=self._progress,
            )
            self.stdout.write(
                f"  {summary['actions']:,} actions, {summary['decisions']:,} decisions, "
                f"{summary['audit_events']:,} audit events"
            )

        keys = {}
        for slug, _name, _stage, _types in DEPLOYMENTS:
            _, keys[slug] = api_key_create(deployment=deployments[slug], name="demo")
            # The humans' outcomes come from the system of record, with a key of its own.
            _, keys[f"{slug}.outcomes"] = api_key_create(
                deployment=deployments[slug], name="demo system of record", scopes=["outcomes"]
            )

        demo_dir = Path(settings.BASE_DIR) / ".demo"
        demo_dir.mkdir(exist_ok=True)
        (demo_dir / "keys.env").write_text("".join(f"{slug}={key}\n" for slug, key in keys.items()))
        self.stdout.write(f"\nSign in at {base_url}/accounts/login/ as:")
        for username, role, password in PEOPLE:
            self.stdout.write(f"  {role:<9} {username:<9} password: {password}")
        self.stdout.write("\nAPI keys (new ones each run; also in .demo/keys.env):")
        for slug, key in keys.items():
            stage = deployments[slug.removesuffix(".outcomes")].stage
            self.stdout.write(f"  {slug:<26} ({stage:<10}) {key}")
        self.stdout.write(
            f"\nTry: curl -s -X POST {base_url}/api/v1/actions "
            f"-H 'Authorization: Bearer {keys['invoice-matching']}' -H 'Content-Type: application/json' "
            """-d '{"action_type":"invoice.match","payload":{"invoice":"INV-1"},"""
            """"risk_score":0.1,"confidence":0.99}'\n"""
        )

    def _progress(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
