#!/usr/bin/env python3
"""An orchfs worker in Python using nothing but file I/O on its sandbox
directory ($ORCHFS_SANDBOX): heartbeats and agent.* events go to `events`,
messages come from `inbox`. It acts on user messages, acknowledges guardian
interventions and stops cleanly on an interrupt or SIGTERM."""
import json
import os
import signal
import sys
import time

SB = os.environ.get("ORCHFS_SANDBOX")
if not SB:
    sys.exit("run me as an orchfs step")


def post(event_type, **data):
    """Append one event; the write returns once orchfs has stored it."""
    event = {"event_type": event_type, "source": "worker.py"}
    if data:
        event["event_data"] = data
    with open(os.path.join(SB, "events"), "a") as f:
        f.write(json.dumps(event) + "\n")


def take_messages():
    """Every queued message, oldest first. Reading the inbox to its end and
    closing it marks them delivered; a crash before that hands them back."""
    with open(os.path.join(SB, "inbox")) as f:
        return [json.loads(line) for line in f.read().splitlines() if line]


stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, on_term)
post("agent.started", pid=os.getpid())
handled = 0
while not stopping:
    post("heartbeat", handled=handled)
    for msg in take_messages():
        kind, text = msg["message_type"], msg["content"]
        if kind == "interrupt":
            print(f"interrupted: {text}", flush=True)
            stopping = True
            break
        if kind == "guardian_intervention":
            print(f"guardian says: {text}", flush=True)
            post("agent.ack", guardian=text)
            continue
        print(f"working on: {text}", flush=True)
        with open("notes.txt", "a") as notes:
            notes.write(text + "\n")
        handled += 1
        post("agent.reply", done=text, message_id=msg["id"])
    time.sleep(0.5)
post("agent.stopped", handled=handled)
