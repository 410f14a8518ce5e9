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

An event that names a `replyTo` (the webhook connector with REPLY_TIMEOUT)
is answered through the connector's `respond` operation: an `invoke`, whose
`result` we read before the ack (answering pings meanwhile).
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


def reply(event, reply_to):
    """Invoke `respond` of the event's Connection and wait for its result.

    False when stdin closed or a shutdown came meanwhile."""
    message = event.get("message") or {}
    body = {"echo": message.get("text"), "by": "echo.py", "instanceKey": event["instanceKey"]}
    send({"type": "invoke", "id": "reply", "connection": event["connection"],
          "operation": "respond", "input": {"replyTo": reply_to, "body": body}})
    while True:
        line = sys.stdin.readline()
        if not line:
            return False
        msg = json.loads(line)
        if msg.get("type") == "result" and msg.get("id") == "reply":
            if not msg.get("ok"):
                log(f"echo.py: could not reply: {msg.get('error')}")
            return True
        if msg.get("type") == "ping":
            send({"type": "pong", "nonce": msg["nonce"]})
        elif msg.get("type") == "shutdown":
            return False


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
            reply_to = (msg["event"].get("properties") or {}).get("replyTo")
            if reply_to is not None and not reply(msg["event"], reply_to):
                return 0
            send({"type": "ack", "id": msg["id"]})
        elif kind == "ping":
            send({"type": "pong", "nonce": msg["nonce"]})
        elif kind == "shutdown":
            return 0
        elif kind == "error":
            log(f"echo.py: the orchestrator reported: {msg.get('message')}")


if __name__ == "__main__":
    sys.exit(main())
