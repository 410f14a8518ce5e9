#!/usr/bin/env python3
"""lines.py: a connector in Python, speaking the jsonl protocol (docs/protocol.md).

It emits the events in a file, one JSON event object per line, e.g.

    {"name":"user_message","message":{"type":"text","text":"hi"},"instanceKey":"demo"}

Config `FILE` names that file (relative paths are taken from the working
directory). Every event is sent at once with an increasing `seq`, without
waiting for answers (pipelining); each answer is printed to stderr as
`ack <seq>` or `nack <seq> <kind> <message>`. Then it waits for `shutdown`.

The orchestrator writes one JSON object per line to our stdin; we answer one
JSON object per line on stdout, flushed at once. Stderr goes to this
connection's log. Standard library only. Use `spec.protocol: jsonl`.
"""

import json
import sys

PROTOCOL_VERSION = 1
EX_CONFIG = 78  # "fix the configuration": the orchestrator does not restart in a loop


def send(msg):
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(text):
    print(text, file=sys.stderr, flush=True)


def read_events(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def on_init(init):
    if init.get("protocol") != PROTOCOL_VERSION:
        log(f"lines.py: protocol {init.get('protocol')} is not {PROTOCOL_VERSION}")
        sys.exit(EX_CONFIG)
    path = init.get("config", {}).get("FILE")
    if not path:
        log("lines.py: config FILE is required")
        sys.exit(EX_CONFIG)
    try:
        events = read_events(path)
    except (OSError, ValueError) as e:
        log(f"lines.py: cannot read events from {path}: {e}")
        sys.exit(EX_CONFIG)
    send({"type": "ready", "protocol": PROTOCOL_VERSION})
    for seq, event in enumerate(events, start=1):
        send({"type": "emit", "seq": seq, "event": event})


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as e:
            log(f"lines.py: ignored a line that is not JSON: {e}")
            continue
        kind = msg.get("type")
        if kind == "init":
            on_init(msg)
        elif kind == "ack":
            log(f"ack {msg['seq']}")
        elif kind == "nack":
            error = msg.get("error", {})
            log(f"nack {msg['seq']} {error.get('kind')} {error.get('message')}")
        elif kind == "ping":
            send({"type": "pong", "nonce": msg["nonce"]})
        elif kind == "shutdown":
            return 0
        elif kind == "error":
            log(f"lines.py: the orchestrator reported: {msg.get('message')}")
    return 0  # stdin closed: the orchestrator is gone


if __name__ == "__main__":
    sys.exit(main())
