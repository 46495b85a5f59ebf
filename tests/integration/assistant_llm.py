"""The help assistant's optional generation (issue #18, assistant.llm-url) against a local
endpoint that speaks OpenAI's chat completions protocol (Python's standard library): the
passages and the question are sent with the model and the bearer key from the key file; the
answer carries the generated text and the passages it cites; a slow endpoint (past
assistant.llm-timeout-ms), an error status, a malformed answer and an answer that cites nothing
leave the retrieval answer with the reason; the control plane's loop serves other requests
while a generation waits; nothing is sent for a question that found nothing."""

import http.server
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from mltest import Tap  # noqa: E402
from mlcontrol import ControlDaemon, Postgres, migrate  # noqa: E402

ASK = "/api/v1/assistant/ask"
KEY = "sk-test-0123456789abcdef"
seen = []


class Endpoint(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(n) or b"{}")
        seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": req})
        user = req["messages"][-1]["content"] if req.get("messages") else ""
        if "slowly" in user:
            time.sleep(3)
            return self.answer(200, reply("Too late [1]."))
        if "garbage" in user:
            return self.answer(200, b"{\"choices\": [{\"message\": 42}")
        if "failing" in user:
            return self.answer(500, {"error": {"message": "model crashed"}})
        if "uncited" in user:
            return self.answer(200, reply("Just reinstall everything."))
        self.answer(200, reply("Allow the camera in the site settings and reload the page [1]. "
                               "If another app holds it, close that app [2]."))


def reply(text):
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "test-model",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}]}


t = Tap()
pg = Postgres()
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
srv.handle_error = lambda request, address: None  # meetlited hanging up on a slow answer is expected
threading.Thread(target=srv.serve_forever, daemon=True).start()
keyfile = tempfile.NamedTemporaryFile("w", suffix=".key", delete=False)
keyfile.write(KEY + "\n")
keyfile.close()
d = None
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    d = ControlDaemon(pg.url, [
        "assistant.llm-url=http://127.0.0.1:%d/v1/chat/completions" % srv.server_address[1],
        "assistant.llm-key-file=" + keyfile.name, "assistant.llm-model=test-model",
        "assistant.llm-timeout-ms=1000", "assistant.rate-limit=1000"])
    api = d.api
    tok, _ = api.user("gen@example.org")

    # ------------------------------------------------------------ a generated answer
    r = api.post(ASK, {"question": "my camera is black"}, tok)
    ok = r.status == 200 and r.json.get("mode") == "generated"
    g = r.json.get("generated", {}) if ok else {}
    t.ok(ok and g.get("text", "").startswith("Allow the camera") and
         [c["n"] for c in g.get("citations", [])] == [1, 2],
         "generated: the text and the passages it cites ([1], [2])", r)
    t.ok(ok and g["citations"][0]["slug"] == r.json["passages"][0]["slug"] and
         g["citations"][0]["link"].startswith("/api/v1/assistant/articles/") and
         all("text" not in p for p in r.json["passages"]),
         "citations name the passages' articles; the passages' full text is not in the answer", r)
    s = seen[-1] if seen else {}
    body = s.get("body", {})
    msgs = body.get("messages", [])
    t.ok(s.get("path") == "/v1/chat/completions" and s.get("auth") == "Bearer " + KEY and
         body.get("model") == "test-model" and body.get("stream") is False,
         "the request: the path, the key from the file, the model, no streaming", s)
    t.ok(len(msgs) == 2 and msgs[0]["role"] == "system" and "only" in msgs[0]["content"] and
         "[1] My camera is black" in msgs[1]["content"] and
         msgs[1]["content"].endswith("Question: my camera is black"),
         "the prompt: answer from the numbered passages only, then the question", msgs)
    t.ok(KEY not in d.log(), "the key is never logged")

    # ------------------------------------------------------------ fallbacks
    for q, why in (("camera black slowly", "timeout"), ("camera black garbage", "malformed"),
                   ("camera black failing", "error"), ("camera black uncited", "uncited")):
        t0 = time.monotonic()
        r = api.post(ASK, {"question": q}, tok)
        took = time.monotonic() - t0
        t.ok(r.status == 200 and r.json.get("mode") == "retrieval" and
             r.json.get("generation_error") == why and "generated" not in r.json and
             len(r.json["passages"]) == 3 and all("text" not in p for p in r.json["passages"]),
             "%s: the retrieval answer, generation_error %s" % (q, why), r)
        if why == "timeout":
            t.ok(took < 2.8, "the timeout answers within assistant.llm-timeout-ms (%.2f s)" % took)

    # ------------------------------------------------------------ the loop is not blocked
    res = {}

    def slow():
        res["r"] = api.post(ASK, {"question": "camera black slowly"}, tok)

    th = threading.Thread(target=slow)
    th.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    h = api.get("/api/v1/health")
    took = time.monotonic() - t0
    th.join()
    t.ok(h.status == 200 and took < 0.5,
         "while a generation waits, other requests are served (%.3f s)" % took, h)
    t.ok(res["r"].status == 200 and res["r"].json.get("generation_error") == "timeout",
         "and the waiting one gets its fallback", res["r"])

    # ------------------------------------------------------------ nothing to write from
    before = len(seen)
    r = api.post(ASK, {"question": "how do I bake sourdough bread"}, tok)
    t.ok(r.status == 200 and r.json["answered"] is False and r.json.get("mode") == "retrieval" and
         len(seen) == before, "a question that found nothing is not sent to the endpoint", r)

    # ------------------------------------------------------------ a missing key file
    d2 = None
    try:
        from mltest import Daemon  # noqa: E402
        from mlcontrol import control_sets  # noqa: E402
        from mltest import free_port  # noqa: E402
        d2 = Daemon(control_sets(pg.url, free_port(), free_port(), [
            "assistant.llm-url=http://127.0.0.1:1/v1/chat/completions",
            "assistant.llm-key-file=/nonexistent/key"]), wait_for=None)
        rc = None
        for _ in range(100):
            if not d2.alive():
                break
            time.sleep(0.1)
        log = d2.log()
        t.ok(not d2.alive() and "assistant.llm-key-file" in log,
             "an unreadable key file stops the start with a clear error", log[-800:])
    finally:
        if d2:
            d2.close()

    # ------------------------------------------------------------ a key never goes out in clear
    d3 = None
    try:
        d3 = Daemon(control_sets(pg.url, free_port(), free_port(), [
            "assistant.llm-url=http://192.0.2.7:8000/v1/chat/completions",
            "assistant.llm-key-file=" + keyfile.name]), wait_for=None)
        for _ in range(100):
            if not d3.alive():
                break
            time.sleep(0.1)
        log = d3.log()
        t.ok(not d3.alive() and "assistant.llm-url" in log and "https://" in log,
             "a bearer key with an http:// endpoint off this host stops the start", log[-800:])
    finally:
        if d3:
            d3.close()
    # --check-config applies the same rules, and reads the key file
    import subprocess  # noqa: E402
    from mltest import MEETLITED  # noqa: E402

    def check(*sets):
        args = [MEETLITED]
        for s in control_sets(pg.url, free_port(), free_port(), sets):
            args += ["--set", s]
        return subprocess.run(args + ["--check-config"], capture_output=True, text=True, timeout=60)
    r = check("assistant.llm-url=http://192.0.2.7:8000/v1/chat/completions",
              "assistant.llm-key-file=" + keyfile.name)
    t.ok(r.returncode != 0 and "assistant.llm-url" in r.stderr,
         "--check-config: a bearer key with an http:// endpoint off this host is refused", r.stderr)
    r = check("assistant.llm-url=https://192.0.2.7/v1/chat/completions",
              "assistant.llm-key-file=/nonexistent/key")
    t.ok(r.returncode != 0 and "assistant.llm-key-file" in r.stderr,
         "--check-config: an unreadable key file is refused", r.stderr)
    r = check("assistant.llm-url=https://192.0.2.7/v1/chat/completions",
              "assistant.llm-key-file=" + keyfile.name)
    t.ok(r.returncode == 0, "--check-config: an https:// endpoint with a readable key passes",
         r.stderr)
finally:
    if d:
        d.stop_checked(t)
    pg.close()
    srv.shutdown()
    os.unlink(keyfile.name)
t.done()
