#!/usr/bin/env python3
"""lines.py: a connector in Python, speaking the jsonl protocol (docs/protocol.md).

It emits the events in a file, one JSON event object per line, e.g.

    {"name":"user_message","message":{"type":"text","text":"hi"},"instanceKey":"demo"}

Config `FILE` names that file (relative paths are taken from the working
directory). Events are sent with increasing `seq`s without waiting for each
answer (pipelining), at most `WINDOW` (default 1024) unanswered at once. Each
answer is printed to stderr as `ack <seq>` (unless `LOG_ACKS` is `false`) or
`nack <seq> <kind> <message>`; once all are answered, `all <n> answered: <a>
acked, <k> nacked`. Then it waits for `shutdown`.

It also serves one operation, `respond` (input `{"text": "..."}`): each
`call` appends the text as a line to the file named by config `REPLIES` and
is answered `{"type":"callResult","id":...,"ok":true,"data":{"written":true}}`.
Every `call` gets exactly one `callResult`: an unknown operation is
`unavailable`, bad input `validation_error`, a failed write `transient`
(the orchestrator may retry it), no `REPLIES` configured `permanent`. Each
call runs in its own thread, so a slow one holds up neither emits nor pings.

The rule every client of the protocol must follow: read while you write.
The orchestrator answers on our stdin while we emit on stdout; a program
that writes every emit before reading any answer fills the pipe the answers
come through, and both sides wait on each other. So a reader thread reads
stdin the whole time, and the window bounds how far emits run ahead of their
answers. One writer thread owns stdout; the others hand it messages.

Stderr goes to this connection's log. Standard library only. Use
`spec.protocol: jsonl`.
"""

import json
import queue
import sys
import threading

PROTOCOL_VERSION = 1
EX_CONFIG = 78  # "fix the configuration": the orchestrator does not restart in a loop


def log(text):
    print(text, file=sys.stderr, flush=True)


def fail(text):
    log(f"lines.py: {text}")
    sys.exit(EX_CONFIG)


class Channel:
    """Our end of the protocol: a writer thread for stdout, a reader thread for stdin."""

    def __init__(self, window, log_acks, replies):
        self.window = window
        self.log_acks = log_acks
        self.replies = replies  # the file `respond` appends to, or None
        self.replies_lock = threading.Lock()
        self.outgoing = queue.Queue()
        self.cond = threading.Condition()
        self.in_flight = 0  # emits sent and not answered
        self.acked = 0
        self.nacked = 0
        self.stopped = False  # shutdown received, or stdin closed

    def start(self):
        threading.Thread(target=self._write, daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, msg):
        """Hand a message to the writer; never blocks."""
        self.outgoing.put(json.dumps(msg, separators=(",", ":")) + "\n")

    def _write(self):
        while True:
            line = self.outgoing.get()
            # Write what is queued, then flush once.
            while True:
                sys.stdout.write(line)
                try:
                    line = self.outgoing.get_nowait()
                except queue.Empty:
                    break
            sys.stdout.flush()

    def emit(self, seq, event):
        """Sends one emit once the window has room; False once stopped."""
        with self.cond:
            while self.in_flight >= self.window and not self.stopped:
                self.cond.wait()
            if self.stopped:
                return False
            self.in_flight += 1
        self.send({"type": "emit", "seq": seq, "event": event})
        return True

    def wait_answers(self):
        """Waits until every emit is answered (or we are stopped)."""
        with self.cond:
            while self.in_flight > 0 and not self.stopped:
                self.cond.wait()
            return not self.stopped

    def wait_stop(self):
        with self.cond:
            while not self.stopped:
                self.cond.wait()

    def _answered(self, acked):
        with self.cond:
            self.in_flight -= 1
            if acked:
                self.acked += 1
            else:
                self.nacked += 1
            self.cond.notify_all()

    def _call(self, call):
        """Performs one call and answers it with exactly one callResult."""
        try:
            data = self._perform(call.get("operation"), call.get("input"))
            result = {"type": "callResult", "id": call["id"], "ok": True, "data": data}
        except CallFailed as e:
            result = {
                "type": "callResult",
                "id": call["id"],
                "ok": False,
                "error": {"class": e.klass, "message": e.message},
            }
        self.send(result)

    def _perform(self, operation, data):
        if operation != "respond":
            raise CallFailed("unavailable", f"this connector has no operation {operation!r}")
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise CallFailed("validation_error", "input.text must be a string")
        if not self.replies:
            raise CallFailed("permanent", "config REPLIES is not set")
        try:
            with self.replies_lock, open(self.replies, "a", encoding="utf-8") as f:
                f.write(text.replace("\n", " ") + "\n")
        except OSError as e:
            raise CallFailed("transient", f"cannot append to {self.replies}: {e}") from e
        return {"written": True}

    def _read(self):
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except json.JSONDecodeError as e:
                log(f"lines.py: ignored a line that is not JSON: {e}")
                continue
            kind = msg.get("type")
            if kind == "ack":
                if self.log_acks:
                    log(f"ack {msg['seq']}")
                self._answered(True)
            elif kind == "nack":
                error = msg.get("error", {})
                log(f"nack {msg['seq']} {error.get('kind')} {error.get('message')}")
                self._answered(False)
            elif kind == "ping":
                self.send({"type": "pong", "nonce": msg["nonce"]})
            elif kind == "call":
                threading.Thread(target=self._call, args=(msg,), daemon=True).start()
            elif kind == "cancel":
                pass  # advice only: our calls are short, each is answered anyway
            elif kind == "shutdown":
                break
            elif kind == "error":
                log(f"lines.py: the orchestrator reported: {msg.get('message')}")
        # shutdown, or stdin closed: the orchestrator is gone
        with self.cond:
            self.stopped = True
            self.cond.notify_all()


class CallFailed(Exception):
    """A call failed; `klass` is its failure class (transient, permanent, ...)."""

    def __init__(self, klass, message):
        super().__init__(message)
        self.klass = klass
        self.message = message


def read_init():
    """The first message must be init; returns it (None if stdin closed first)."""
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        if msg.get("type") == "init":
            return msg
        log(f"lines.py: ignored a {msg.get('type')} before init")
    return None


def number(config, key, default):
    try:
        value = int(config.get(key) or default)
    except ValueError:
        fail(f"config {key} is not a number: {config.get(key)!r}")
    if value < 1:
        fail(f"config {key} must be at least 1")
    return value


def main():
    init = read_init()
    if init is None:
        return 0
    if init.get("protocol") != PROTOCOL_VERSION:
        fail(f"protocol {init.get('protocol')} is not {PROTOCOL_VERSION}")
    config = init.get("config", {})
    path = config.get("FILE")
    if not path:
        fail("config FILE is required")
    try:
        events = open(path, encoding="utf-8")
    except OSError as e:
        fail(f"cannot read events from {path}: {e}")
    window = number(config, "WINDOW", 1024)
    log_acks = str(config.get("LOG_ACKS", "true")).lower() != "false"

    channel = Channel(window, log_acks, config.get("REPLIES"))
    channel.start()
    channel.send({"type": "ready", "protocol": PROTOCOL_VERSION})
    seq = 0
    with events:
        for line_no, line in enumerate(events, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as e:
                log(f"lines.py: {path}:{line_no} skipped, not JSON: {e}")
                continue
            seq += 1
            if not channel.emit(seq, event):
                return 0
    if channel.wait_answers():
        log(f"all {seq} answered: {channel.acked} acked, {channel.nacked} nacked")
    channel.wait_stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
