#!/usr/bin/env python3
"""discord_bot.py: a Discord bot agent in Python that answers every command.

For each delivered event of connector-discord (`command`, `component`,
`modal_submit`) it invokes the `followup` operation of the Connection the
event came through, with the event's `interaction` reference (the connector
keeps the interaction token; the agent never sees it):

    {"type":"invoke","id":"r-1","connection":"<the event's connection>","operation":"followup",
     "input":{"interaction":"<event.properties.interaction>","content":"<the answer>"},
     "correlationId":"<event id>"}

The answer to `/ask question:…` is "You asked: …"; to any other command,
component or modal, a line naming what was received (an image or file
attachment by its file name or URL). Then it waits for the `result` with
the same id, logs it to stderr as `result {json}`, and acks the delivery.
A failed followup (e.g. the reference expired after 15 minutes) is logged,
not retried.

The Agent resource must allow the operation:
`spec.invoke: [{connection: discord, operations: [followup]}]`, and the
Connection must allow it: `spec.operations.allow: [followup]`. See
examples/discord-bot/bundle.yaml.

jsonl over stdin/stdout, stderr to this instance's log, standard library
only. Use `spec.protocol: jsonl` (the default for agents).
"""

import json
import sys

PROTOCOL_VERSION = 1
MAX_CONTENT = 2000  # Discord's limit for a message's content


def send(msg):
    """Write one protocol message as a line and flush it."""
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(text):
    print(text, file=sys.stderr, flush=True)


def describe(message):
    """What the event's message is, in words."""
    message = message or {}
    kind = message.get("type")
    if kind == "image":
        return f"an image ({message.get('url', '')})"
    if kind == "file":
        return f"a file named {message.get('name', '?')}"
    return message.get("text", "")


def answer(event):
    """The followup text for one event."""
    props = event.get("properties") or {}
    name = event.get("name")
    if name == "command":
        command = props.get("command", "")
        text = props.get("text", "")
        if command == "ask":
            question = text.split("question:", 1)[1].strip() if "question:" in text else text
            reply = f"You asked: {question}"
        else:
            reply = f"Got /{command}: {describe(event.get('message'))}"
    elif name == "component":
        reply = f"Pressed {props.get('custom_id', '?')}: {describe(event.get('message'))}"
    elif name == "modal_submit":
        reply = f"Thanks, received:\n{describe(event.get('message'))}"
    else:
        reply = f"Received {name}"
    return reply[:MAX_CONTENT]


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
            log(f"discord_bot.py: ignored a line that is not JSON: {e}")
            continue
        kind = msg.get("type")
        if kind == "init":
            if msg.get("protocol") != PROTOCOL_VERSION:
                log(f"discord_bot.py: protocol {msg.get('protocol')} is not {PROTOCOL_VERSION}")
                return 78
            send({"type": "ready", "protocol": PROTOCOL_VERSION})
        elif kind == "deliver":
            if stopping:
                continue  # not acked: the orchestrator delivers it again later
            event = msg["event"]
            reference = (event.get("properties") or {}).get("interaction")
            if not reference:
                log(f"discord_bot.py: event {event.get('name')} has no interaction reference; acked unanswered")
                send({"type": "ack", "id": msg["id"]})
                continue
            next_id += 1
            invoke_id = f"r-{next_id}"
            pending[invoke_id] = msg["id"]
            send(
                {
                    "type": "invoke",
                    "id": invoke_id,
                    "connection": event["connection"],
                    "operation": "followup",
                    "input": {"interaction": reference, "content": answer(event)},
                    "correlationId": event["id"],
                }
            )
        elif kind == "result":
            delivery = pending.pop(msg.get("id"), None)
            if delivery is None:
                log(f"discord_bot.py: ignored a result for {msg.get('id')!r}, which nobody waits for")
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
            log(f"discord_bot.py: the orchestrator reported: {msg.get('message')}")


if __name__ == "__main__":
    sys.exit(main())
