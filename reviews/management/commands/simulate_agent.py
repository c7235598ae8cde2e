"""A simulated agent: proposes actions through the real HTTP API with the Python client,
executes what it is told to, reports results, and (in shadow mode) reports what the humans did.

    ./manage.py simulate_agent refunds --rate 1 --key tl_...   # key defaults to .demo/keys.env
"""

import random
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from trustladder_client import Client
from trustladder_client.errors import TrustladderError

from reviews.demo.history import STORIES, _human_version, payload_for


class Command(BaseCommand):
    help = "Propose actions to a deployment over HTTP at --rate per second, as an agent would."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--rate", type=float, default=1.0, help="proposals per second")
        parser.add_argument("--key", default="", help="API key (default: the one in .demo/keys.env)")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--count", type=int, default=0, help="stop after this many proposals (0: run on)")
        parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: run on)")
        parser.add_argument("--seed", type=int, default=None)

    def _key(self, slug: str, key: str) -> str:
        if key:
            return key
        keys = Path(settings.BASE_DIR) / ".demo" / "keys.env"
        for line in keys.read_text().splitlines() if keys.exists() else []:
            name, _, value = line.partition("=")
            if name == slug:
                return value
        raise CommandError(f"no API key for {slug}: pass --key or run load_demo first")

    def handle(
        self, *args, slug: str, rate: float, key: str, base_url: str, count: int, seconds: float, seed, **options
    ) -> None:
        if rate <= 0:
            raise CommandError("--rate must be above 0")
        rng = random.Random(seed)
        story = next((s for s in STORIES if s.slug == slug), None)
        types = story.types if story else ["demo.action"]
        client = Client(base_url + "/api/v1", self._key(slug, key))
        started, sent = time.monotonic(), 0
        while (not count or sent < count) and (not seconds or time.monotonic() - started < seconds):
            action_type = rng.choice(types)
            payload = payload_for(action_type, rng)
            external_id = f"sim-{slug}-{int(time.time() * 1000)}-{sent}"
            try:
                action = client.propose(
                    action_type,
                    payload,
                    risk_score=round(rng.betavariate(2, 6), 3),
                    confidence=round(min(0.999, rng.betavariate(16, 1.1)), 3),
                    external_id=external_id,
                    model_version="sim-1",
                    rationale="Simulated agent.",
                    idempotency_key=external_id,
                )
                if action.decision == "execute":
                    ok = rng.random() > 0.01
                    claim = client.claim(action.id, payload_sha256=action.payload_sha256)
                    client.report_result(
                        action.id,
                        status="executed" if ok else "failed",
                        payload_sha256=action.payload_sha256,
                        error="" if ok else "simulated 503",
                        claim_key=claim.claim_key,
                    )
                elif action.decision == "shadow":
                    agree = rng.random() < (story.agreement if story else 0.9)
                    human = payload if agree else _human_version(action_type, payload, rng)[0]
                    client.report_outcomes([{"external_id": external_id, "action_type": action_type, "payload": human}])
                self.stdout.write(f"#{action.id} {action_type:<24} → {action.decision}")
            except TrustladderError as exc:
                self.stderr.write(f"error: {exc}")
            sent += 1
            time.sleep(rng.expovariate(rate))
        client.close()
