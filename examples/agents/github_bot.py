#!/usr/bin/env python3
"""github_bot.py: an agent in Python that welcomes every opened GitHub issue.

For each `issues.opened` event (connectors/github) it invokes the
`createIssueComment` operation of the Connection the event came through:

    {"type":"invoke","id":"c-1","connection":"<the event's connection>",
     "operation":"createIssueComment",
     "input":{"repo":"octo-org/hello","issueNumber":"7",
              "body":"Thanks for opening this issue, @ada! ..."},
     "correlationId":"<event id>"}

`repo` and `issueNumber` are the event's `repository` and `number`
properties, passed as they are; the issue's title comes from
`event.payload` (GitHub's whole delivery) when the orchestrator sends it
(the agent asks for it with `"features":["payload"]` in `ready`), else the
comment goes without it. Every other event is acked at once. The Agent
resource must allow the operation:
`spec.invoke: [{connection: github, operations: [createIssueComment]}]`;
see examples/github-bot/bundle.yaml.

Each result is logged to stderr as `result {json}` (a failure shows its
class: `quota_exceeded` for GitHub's rate limits, `transient`, `permanent`
with GitHub's message) and the delivery is acked whatever it says: a failed
comment is logged, not retried (createIssueComment is not idempotent: a
retry after a lost answer could comment twice). An agent that dies between
the comment and the ack gets the event again, and comments again.

One loop reads every message and never blocks on one answer (see
reply.py). jsonl over stdin/stdout, stderr to this instance's log,
standard library only. Use `spec.protocol: jsonl` (the default for agents).
"""

import json
import sys

PROTOCOL_VERSION = 1
OPERATION = "createIssueComment"


def send(msg):
    """Write one protocol message as a line and flush it."""
    sys.stdout.write(json.dumps(msg, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def log(text):
    print(text, file=sys.stderr, flush=True)


def welcome(event):
    """The comment for an `issues.opened` event, or None if it cannot name the issue."""
    props = event.get("properties") or {}
    repo, number = props.get("repository"), props.get("number")
    if not repo or number in (None, ""):
        return None
    payload = event.get("payload") or {}
    issue = payload.get("issue") or {}
    sender = props.get("sender") or (payload.get("sender") or {}).get("login")
    who = f", @{sender}" if sender else ""
    title = issue.get("title")
    about = f" about “{title}”" if title else ""
    body = (
        f"Thanks for opening this issue{who}! A maintainer will look at it soon."
        f"\n\n(An automatic welcome{about}, from github_bot.py.)"
    )
    return {"repo": repo, "issueNumber": str(number), "body": body}


def main():
    pending = {}  # invoke id -> the delivery id it answers
    next_id = 0
    stopping = False
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as e:
            log(f"github_bot.py: ignored a line that is not JSON: {e}")
            continue
        kind = msg.get("type")
        if kind == "init":
            if msg.get("protocol") != PROTOCOL_VERSION:
                log(f"github_bot.py: protocol {msg.get('protocol')} is not {PROTOCOL_VERSION}")
                return 78
            send({"type": "ready", "protocol": PROTOCOL_VERSION, "features": ["payload"]})
        elif kind == "deliver":
            if stopping:
                continue  # not acked: delivered again after the restart
            event = msg["event"]
            comment = welcome(event) if event.get("name") == "issues.opened" else None
            if comment is None:
                send({"type": "ack", "id": msg["id"]})
                continue
            next_id += 1
            invoke_id = f"c-{next_id}"
            pending[invoke_id] = msg["id"]
            send(
                {
                    "type": "invoke",
                    "id": invoke_id,
                    "connection": event["connection"],
                    "operation": OPERATION,
                    "input": comment,
                    "correlationId": event.get("id"),
                }
            )
        elif kind == "result":
            delivery = pending.pop(msg.get("id"), None)
            if delivery is None:
                log(f"github_bot.py: ignored a result for {msg.get('id')!r}, which nobody waits for")
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
            stopping = True
        elif kind == "error":
            log(f"github_bot.py: the orchestrator reported: {msg.get('message')}")


if __name__ == "__main__":
    sys.exit(main())
