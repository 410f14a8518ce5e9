#!/usr/bin/env python3
"""slack_bot.py: a Slack bot as an agent, answering through the connector's
operations (connectors/slack).

For each delivered event of a Connection of Connector/slack:

- `app_mention`: `chat.postMessage` "echo: <text>" in the mention's thread;
- `message` with a file (`slack-file:<id>`): `getFile`, then
  `chat.postMessage` "got <name>: <n> bytes" in its thread — the bytes
  arrive base64 in the result; Slack's file URLs need the bot token, which
  stays in the connector;
- `slash_command`: `respond` "echo: <text>", ephemeral, through the
  command's `response_ref` (the connector keeps the response_url);
- `block_actions` (a button): `respond` "you chose <value>", replacing the
  message the button was on;
- anything else (plain messages — the bot's own replies come back as
  messages —, reactions, view submissions): acked, no reply.

Every invoke carries the event's id as its correlationId; its `result` is
logged to stderr as `result {json}`, and the delivery is acked once its
last invoke answered (a failed reply is logged with its class, not retried).

jsonl over stdin/stdout, stderr to this instance's log, standard library
only. The Agent resource must allow the operations:
`spec.invoke: [{connection: <name>, operations: [chat.postMessage, respond, getFile]}]`.
"""

import base64
import json
import sys

PROTOCOL_VERSION = 1
FILE_PREFIX = "slack-file:"


def send(msg):
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(text):
    print(text, file=sys.stderr, flush=True)


class Bot:
    def __init__(self):
        self.pending = {}  # invoke id -> (delivery id, event, step)
        self.next_id = 0
        self.stopping = False

    def invoke(self, delivery, event, step, operation, payload):
        self.next_id += 1
        invoke_id = f"sl-{self.next_id}"
        self.pending[invoke_id] = (delivery, event, step)
        send(
            {
                "type": "invoke",
                "id": invoke_id,
                "connection": event["connection"],
                "operation": operation,
                "input": payload,
                "correlationId": event["id"],
            }
        )

    def post(self, delivery, event, text):
        props = event.get("properties") or {}
        payload = {"channel": props["channel"], "text": text}
        thread = props.get("thread_ts") or props.get("ts")
        if thread:
            payload["threadTs"] = thread
        self.invoke(delivery, event, "reply", "chat.postMessage", payload)

    def deliver(self, delivery, event):
        """Starts the answer to one event; True when there is nothing to wait for."""
        log(f"event {json.dumps(event, separators=(',', ':'), sort_keys=True)}")
        name = event.get("name")
        message = event.get("message") or {}
        props = event.get("properties") or {}
        url = message.get("url", "")
        if name == "message" and url.startswith(FILE_PREFIX) and props.get("channel"):
            self.invoke(delivery, event, "file", "getFile", {"fileId": url[len(FILE_PREFIX):]})
        elif name == "app_mention" and props.get("channel"):
            self.post(delivery, event, f"echo: {message.get('text', '')}")
        elif name == "slash_command" and props.get("response_ref"):
            self.invoke(
                delivery,
                event,
                "reply",
                "respond",
                {
                    "responseRef": props["response_ref"],
                    "text": f"echo: {message.get('text', '')}",
                    "responseType": "ephemeral",
                },
            )
        elif name == "block_actions" and props.get("response_ref"):
            self.invoke(
                delivery,
                event,
                "reply",
                "respond",
                {
                    "responseRef": props["response_ref"],
                    "text": f"you chose {props.get('value', props.get('action_id', '?'))}",
                    "replaceOriginal": True,
                },
            )
        else:
            return True
        return False

    def result(self, msg):
        """Handles one result; returns the delivery id to ack, if this was its last step."""
        entry = self.pending.pop(msg.get("id"), None)
        if entry is None:
            log(f"slack_bot.py: ignored a result for {msg.get('id')!r}")
            return None
        delivery, event, step = entry
        log(f"result {json.dumps(msg, separators=(',', ':'), sort_keys=True)}")
        if step == "file":
            if msg.get("ok"):
                data = msg["response"]["data"]
                size = len(base64.b64decode(data["contentBase64"]))
                self.post(delivery, event, f"got {data.get('name', 'the file')}: {size} bytes")
            else:
                error = msg.get("error") or {}
                self.post(delivery, event, f"could not fetch the file ({error.get('class')})")
            return None
        return delivery


def main():
    bot = Bot()
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as e:
            log(f"slack_bot.py: ignored a line that is not JSON: {e}")
            continue
        kind = msg.get("type")
        if kind == "init":
            if msg.get("protocol") != PROTOCOL_VERSION:
                log(f"slack_bot.py: protocol {msg.get('protocol')} is not {PROTOCOL_VERSION}")
                return 78
            # "payload": deliveries carry event.payload, the provider's own object.
            send({"type": "ready", "protocol": PROTOCOL_VERSION, "features": ["payload"]})
        elif kind == "deliver":
            if bot.stopping:
                continue  # not acked: delivered again later
            if bot.deliver(msg["id"], msg["event"]):
                send({"type": "ack", "id": msg["id"]})
        elif kind == "result":
            delivery = bot.result(msg)
            if delivery is not None:
                send({"type": "ack", "id": delivery})
            if bot.stopping and not bot.pending:
                return 0
        elif kind == "ping":
            send({"type": "pong", "nonce": msg["nonce"]})
        elif kind == "shutdown":
            if not bot.pending:
                return 0
            bot.stopping = True
        elif kind == "error":
            log(f"slack_bot.py: the orchestrator reported: {msg.get('message')}")


if __name__ == "__main__":
    sys.exit(main())
