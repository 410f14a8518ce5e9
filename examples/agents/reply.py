#!/usr/bin/env python3
"""reply.py: an agent in Python that answers every event through an operation.

For each delivered event it invokes the `respond` operation of the
Connection the event came through (examples/connectors/lines.py serves one):

    {"type":"invoke","id":"r-1","connection":"<the event's connection>","operation":"respond",
     "input":{"text":"echo: <event text>"},"correlationId":"<event id>"}

then waits for the `result` with the same id, logs it to stderr as
`result {json}`, and acks the delivery. The Agent resource must allow it:
`spec.invoke: [{connection: ..., operations: [respond]}]`.

One loop reads every message and never blocks on one answer: a `result`
arrives like any other message, so pings are answered and further
deliveries start while invokes are in flight; `pending` maps each invoke's
id to the delivery it answers. A delivery is acked whatever the result
says (a failed reply is logged, not retried: `result` shows its class).
On `shutdown` it starts no new delivery and exits once the invokes in
flight are answered.

jsonl over stdin/stdout, stderr to this instance's log, standard library
only. Use `spec.protocol: jsonl` (the default for agents).
"""

import json
import sys

PROTOCOL_VERSION = 1


def send(msg):
    """Write one protocol message as a line and flush it."""
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(text):
    print(text, file=sys.stderr, flush=True)


def text_of(event):
    message = event.get("message") or {}
    return message.get("text", "") if message.get("type") == "text" else ""


def main():
    pending = {}  # invoke id -> the delivery id it answers
    next_id = 0
    stopping = False  # shutdown came: finish the invokes in flight, start none
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0  # the orchestrator closed our stdin
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as e:
            log(f"reply.py: ignored a line that is not JSON: {e}")
            continue
        kind = msg.get("type")
        if kind == "init":
            if msg.get("protocol") != PROTOCOL_VERSION:
                log(f"reply.py: protocol {msg.get('protocol')} is not {PROTOCOL_VERSION}")
                return 78
            send({"type": "ready", "protocol": PROTOCOL_VERSION, "features": ["payload"]})
        elif kind == "deliver":
            if stopping:
                continue  # not acked: the orchestrator delivers it again later
            event = msg["event"]
            next_id += 1
            invoke_id = f"r-{next_id}"
            pending[invoke_id] = msg["id"]
            send(
                {
                    "type": "invoke",
                    "id": invoke_id,
                    "connection": event["connection"],
                    "operation": "respond",
                    "input": {"text": f"echo: {text_of(event)}"},
                    "correlationId": event["id"],
                }
            )
        elif kind == "result":
            delivery = pending.pop(msg.get("id"), None)
            if delivery is None:
                log(f"reply.py: ignored a result for {msg.get('id')!r}, which nobody waits for")
                continue
            log(f"result {json.dumps(msg, separators=(',', ':'), sort_keys=True)}")
            send({"type": "ack", "id": delivery})
            if stopping and not pending:
                return 0
        elif kind == "ping":
            send({"type": "pong", "nonce": msg["nonce"]})
        elif kind == "shutdown":
            if not pending:
                return 0
            stopping = True  # the orchestrator kills us after its grace period
        elif kind == "error":
            log(f"reply.py: the orchestrator reported: {msg.get('message')}")


if __name__ == "__main__":
    sys.exit(main())
