#!/usr/bin/env python3
"""echo.py: an agent in Python, speaking the jsonl protocol (docs/protocol.md).

The orchestrator writes one JSON object per line to our stdin; we answer one
JSON object per line on stdout, flushed at once. Everything human-readable
goes to stderr, which lands in this instance's log. Standard library only.

Set `spec.protocol: jsonl` (the default for agents) in the Agent resource.

One loop that reads a message, then writes its answer, is enough here:
every line this agent writes answers one it read, and the orchestrator
sends at most `maxInFlight` deliveries before it reads their acks, so the
two pipes cannot both fill up. A program that also writes on its own (a
connector's emits) must read while it writes: see examples/connectors/lines.py.
"""

import json
import os
import sys

PROTOCOL_VERSION = 1


def send(msg):
    """Write one protocol message as a line and flush it, so it is not held in a buffer."""
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(text):
    print(text, file=sys.stderr, flush=True)


def received(deliver):
    """The same compact JSON line the Rust agent-echo prints."""
    event = deliver["event"]
    message = event.get("message") or {}
    summary = {
        "id": deliver["id"],
        "attempt": deliver["attempt"],
        "name": event["name"],
        "instanceKey": event["instanceKey"],
        "connection": event["connection"],
        "text": message.get("text") if message.get("type") == "text" else None,
        "properties": dict(sorted((event.get("properties") or {}).items())),
    }
    return json.dumps(summary, separators=(",", ":"), ensure_ascii=False)


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0  # the orchestrator closed our stdin
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as e:
            log(f"echo.py: ignored a line that is not JSON: {e}")
            continue
        kind = msg.get("type")
        if kind == "init":
            if msg.get("protocol") != PROTOCOL_VERSION:
                log(f"echo.py: protocol {msg.get('protocol')} is not {PROTOCOL_VERSION}")
                return 78
            log(f"echo.py pid={os.getpid()} agent={msg['agent']} instanceKey={msg['instanceKey']}")
            send({"type": "ready", "protocol": PROTOCOL_VERSION})
        elif kind == "deliver":
            log(f"received {received(msg)}")
            send({"type": "ack", "id": msg["id"]})
        elif kind == "ping":
            send({"type": "pong", "nonce": msg["nonce"]})
        elif kind == "shutdown":
            return 0
        elif kind == "error":
            log(f"echo.py: the orchestrator reported: {msg.get('message')}")


if __name__ == "__main__":
    sys.exit(main())
