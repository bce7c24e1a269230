#!/usr/bin/env python3
"""A webhook receiver for orchfs (SPEC section 11), Python standard library only.

orchfs POSTs each event a subscriber asked for as its JSON line, with
    X-Orchfs-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed with the secret>
This receiver checks that signature on the raw bytes (before any parsing),
answers 401 to a post whose signature does not match (orchfs then retries it
and, after its schedule, drops it with a webhook.dropped event), and prints
each event it accepts. Events of one subscriber arrive in seq order; a
retried post may arrive again after an answer was lost, so a receiver that
must act once keeps the highest seq it has handled.

    examples/webhook-receiver.py --port 8765 --secret s3cret
and in orchfs's --config:
    {"webhooks": [{"url": "http://127.0.0.1:8765/orchfs", "secret": "s3cret",
                   "events": ["run.*", "step.failed", "attention.*"]}]}
"""
import argparse
import hashlib
import hmac
import http.server
import json
import sys


def make_handler(secret: bytes, seen: dict):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
            got = self.headers.get("X-Orchfs-Signature", "")
            if not hmac.compare_digest(want, got):
                self.send_response(401)
                self.end_headers()
                print("rejected: bad signature", file=sys.stderr, flush=True)
                return
            try:
                event = json.loads(body)
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            seq = event.get("seq", 0)
            if seq <= seen["seq"]:
                # a retry of what was handled already: acknowledge, do nothing
                self.send_response(200)
                self.end_headers()
                return
            seen["seq"] = seq
            print(json.dumps({k: event.get(k) for k in ("seq", "type", "run_id", "step_id", "by")}),
                  flush=True)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--secret", required=True)
    a = ap.parse_args()
    server = http.server.HTTPServer((a.bind, a.port), make_handler(a.secret.encode(), {"seq": 0}))
    print("listening on http://%s:%d/" % (a.bind, a.port), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
