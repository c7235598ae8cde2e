import sys

from django.core.management.base import BaseCommand

from deployments.auditchain import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Seal the audit events not yet in the hash chain, then check the whole chain. Prints the "
        "verified head (keep it somewhere else: it pins every event up to it); exits 1 naming the "
        "first broken event."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-seal", action="store_true", help="only check; leave unsealed events unsealed")

    def handle(self, *args, no_seal: bool, **options) -> None:
        report = audit_chain_verify(seal=not no_seal)
        if not report.ok:
            self.stderr.write(f"audit chain BROKEN: {report.problem} ({report.checked} events verified before it)")
            sys.exit(1)
        self.stdout.write(
            f"audit chain ok: {report.checked} events; head {report.head_seq} {report.head_hash}"
            + (f"; {report.unsealed} not yet sealed" if report.unsealed else "")
        )
