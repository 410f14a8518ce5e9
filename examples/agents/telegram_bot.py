#!/usr/bin/env python3
"""telegram_bot.py: a Telegram bot as an agent, answering through the
connector's operations (connectors/telegram).

For each delivered event of a Connection of Connector/telegram:

- `message` / `command` with text: `sendMessage` to the event's chat,
  as a reply to it: "echo: <text>" (`/start` gets a greeting);
- `message` with an attachment (`telegram-file:<file_id>`): `getFile`, then
  `sendMessage` "got <name>: <n> bytes" — the bytes arrive base64 in the
  result, never a URL (the Bot API's file URLs hold the token);
- `callback_query`: `answerCallbackQuery` with "got <data>";
- anything else (edits, channel posts, `my_chat_member`): acked, no reply.

Every invoke carries the event's id as its correlationId; its `result` is
logged to stderr as `result {json}`, and the delivery is acked once its last
invoke answered (a failed reply is logged with its class, not retried).

One loop reads every message and never blocks on one answer: pings are
answered and further deliveries start while invokes are in flight. jsonl
over stdin/stdout, stderr to this instance's log, standard library only.
The Agent resource must allow the operations:
`spec.invoke: [{connection: <name>, operations: [sendMessage, getFile, answerCallbackQuery]}]`.
"""

import base64
import json
import sys

PROTOCOL_VERSION = 1
FILE_PREFIX = "telegram-file:"


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
        invoke_id = f"tg-{self.next_id}"
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

    def reply(self, delivery, event, text):
        props = event.get("properties") or {}
        payload = {"chatId": props["chat_id"], "text": text}
        if props.get("message_id", "").lstrip("-").isdigit():
            payload["replyToMessageId"] = int(props["message_id"])
        self.invoke(delivery, event, "reply", "sendMessage", payload)

    def deliver(self, delivery, event):
        """Starts the answer to one event; True when there is nothing to wait for."""
        log(f"event {json.dumps(event, separators=(',', ':'), sort_keys=True)}")
        name = event.get("name")
        message = event.get("message") or {}
        props = event.get("properties") or {}
        url = message.get("url", "")
        if name == "message" and url.startswith(FILE_PREFIX):
            self.invoke(delivery, event, "file", "getFile", {"fileId": url[len(FILE_PREFIX):]})
        elif name == "command" and props.get("command") == "/start":
            self.reply(delivery, event, "hello! send me text or a file")
        elif name in ("message", "command") and message.get("type") == "text":
            self.reply(delivery, event, f"echo: {message.get('text', '')}")
        elif name == "callback_query" and props.get("callback_query_id"):
            self.invoke(
                delivery,
                event,
                "answer",
                "answerCallbackQuery",
                {"callbackQueryId": props["callback_query_id"], "text": f"got {props.get('data', '')}"},
            )
        else:
            return True
        return False

    def result(self, msg):
        """Handles one result; returns the delivery id to ack, if this was its last step."""
        entry = self.pending.pop(msg.get("id"), None)
        if entry is None:
            log(f"telegram_bot.py: ignored a result for {msg.get('id')!r}")
            return None
        delivery, event, step = entry
        log(f"result {json.dumps(msg, separators=(',', ':'), sort_keys=True)}")
        if step == "file":
            if msg.get("ok"):
                data = msg["response"]["data"]
                size = len(base64.b64decode(data["contentBase64"]))
                name = (event.get("message") or {}).get("name") or data.get("fileName", "file")
                self.reply(delivery, event, f"got {name}: {size} bytes")
            else:
                error = msg.get("error") or {}
                self.reply(delivery, event, f"could not fetch the file ({error.get('class')})")
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
            log(f"telegram_bot.py: ignored a line that is not JSON: {e}")
            continue
        kind = msg.get("type")
        if kind == "init":
            if msg.get("protocol") != PROTOCOL_VERSION:
                log(f"telegram_bot.py: protocol {msg.get('protocol')} is not {PROTOCOL_VERSION}")
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
            log(f"telegram_bot.py: the orchestrator reported: {msg.get('message')}")


if __name__ == "__main__":
    sys.exit(main())
