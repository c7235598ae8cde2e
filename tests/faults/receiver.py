"""A webhook receiver on loopback that records every delivery it is sent.

It verifies each Standard Webhooks signature with the deployment's secret and answers 200,
so an agent's view of "delivered" can be checked against the outbox. `hold()` makes it keep
requests waiting (to kill a worker while it is in the middle of sending); `release()` lets
them through.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a sender killed mid-request leaves a broken pipe behind: expected here


class Receiver:
    def __init__(self, secret: str, *, hold_timeout: float = 60.0, delay: float = 0.0) -> None:
        self.webhook = Webhook(secret)
        self.lock = threading.Lock()
        self.received: list[dict] = []  # every request, in order: webhook_id, body, valid
        self.aborted = 0  # requests cut off before their body was complete
        self.arrived = threading.Event()  # set when a request arrives while held
        self._open = threading.Event()
        self._open.set()
        self.hold_timeout = hold_timeout
        self.delay = delay  # seconds each request takes (a receiver of some real work)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 — http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the sender died while sending: nothing was delivered
                    with receiver.lock:
                        receiver.aborted += 1
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    receiver.webhook.verify(body, headers)
                    valid = True
                except Exception:
                    valid = False
                record = {"webhook_id": headers.get("webhook-id"), "body": json.loads(body or b"null"), "valid": valid}
                with receiver.lock:
                    receiver.received.append(record)
                receiver.arrived.set()
                receiver._open.wait(receiver.hold_timeout)
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(200 if valid else 400)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def close(self) -> None:
        self._open.set()
        self.server.shutdown()
        self.server.server_close()

    def hold(self) -> None:
        self.arrived.clear()
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def by_webhook_id(self) -> Counter:
        with self.lock:
            return Counter(r["webhook_id"] for r in self.received)

    def invalid(self) -> list[dict]:
        with self.lock:
            return [r for r in self.received if not r["valid"]]

    def action_ids(self) -> Counter:
        """How many distinct deliveries (webhook ids) each action got."""
        with self.lock:
            seen = {(r["webhook_id"], r["body"]["id"]) for r in self.received if r["valid"]}
        return Counter(action_id for _wid, action_id in seen)
