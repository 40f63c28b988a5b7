"""A chat-completions server on loopback that misbehaves on purpose, for the ``llm``
annotator's tests: scripted 429/503, slow replies, non-JSON replies, dropped ids, and a
label outside the taxonomy for any input mentioning "alien"."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOMAINS = ["sports", "food", "law"]
SECRET = "sk-test-do-not-leak-123"


class Script:
    """What the server does with each request, in order; then ``default``."""

    def __init__(self):
        self.steps: list[str] = []
        self.default = "ok"
        self.requests: list[dict] = []
        self.auth: list[str] = []
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            return self.steps.pop(0) if self.steps else self.default


def answer_for(text: str) -> str:
    for d in DOMAINS:
        if d in text:
            return d
    if "alien" in text:
        return "astrology"  # not in the taxonomy
    return "none"


@contextmanager
def run_server():
    """Yields (base URL, script)."""
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.requests.append(body)
            script.auth.append(self.headers.get("Authorization", ""))
            action = script.next()
            if action in ("429", "503"):
                self.send_response(int(action))
                if action == "429":
                    self.send_header("Retry-After", "0")
                self.end_headers()
                return
            if action == "slow":
                time.sleep(0.6)
            if action == "redirect":  # to another host: the key must not follow
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.2:9/v1/chat/completions")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if action == "bad_status":  # not HTTP at all: http.client.BadStatusLine
                self.wfile.write(b"garbage\r\n\r\n")
                self.close_connection = True
                return
            if action == "incomplete":  # promises more than it sends: http.client.IncompleteRead
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                self.wfile.write(b'{"choices": ')
                self.close_connection = True
                return
            if action in ("trickle", "huge"):  # one byte per 0.1 s / a reply too big to read whole
                self.send_response(200)
                self.send_header("Content-Length", str(100 if action == "trickle" else 10_000_000))
                self.end_headers()
                try:
                    for _ in range(40 if action == "trickle" else 1000):
                        self.wfile.write(b" " if action == "trickle" else b" " * 10_000)
                        self.wfile.flush()
                        if action == "trickle":
                            time.sleep(0.1)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True
                return
            items = json.loads(body["messages"][1]["content"])
            if action == "bad_json":
                content = "Sure! Here are the labels: sports, food"
            elif action == "null_label":
                content = json.dumps({"labels": [{"id": it["id"], "domain": None} for it in items]})
            elif action == "upper":
                content = json.dumps({"labels": [{"id": it["id"], "domain": answer_for(it["input"]).upper()}
                                                 for it in items]})
            elif action == "dup_id":  # the first id answered twice, differently
                content = json.dumps({"labels": [{"id": it["id"], "domain": answer_for(it["input"])} for it in items]
                                     + [{"id": items[0]["id"], "domain": "law"}]})
            elif action == "drop_one":
                content = json.dumps({"labels": [{"id": it["id"], "domain": answer_for(it["input"])} for it in items[1:]]})
            else:
                content = "```json\n" + json.dumps({"labels": [{"id": it["id"], "domain": answer_for(it["input"])}
                                                               for it in items]}) + "\n```"
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    finally:
        httpd.shutdown()
        httpd.server_close()


