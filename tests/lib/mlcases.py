"""Protocol cases as data for the control plane (tier 2): HTTP exchanges (tests/data/http/*.case)
and WebSocket scripts (tests/data/ws/*.script), read from their files, run against a real
meetlited, and judged step by step. Python standard library and Debian's python3-websockets.

A file is a list of steps. A '#' line names the steps that follow it (the TAP description);
blank lines are ignored.

HTTP exchange (both kinds of file), as curl -v shows one:

    # signup without a password
    > POST /api/v1/auth/signup
    > Content-Type: application/json          (headers until an empty '>' line; optional)
    >
    > {"email": "ann-${RUN}@example.org"}      (the body: every '>' line after the empty one)
    < 422
    < Allow: $absent                          (expected headers until an empty '<' line)
    <
    < {"error": {"code": "missing_field", "message": "$re:email"}}

  A body without a Content-Type is sent as application/json. '> RAW' as the first line sends
  the lines that follow as they are (CRLF line ends, a final CRLF) on a connection of its own:
  for requests http.client would not make. '@listener admin' sends the exchanges that follow
  to the admin listener ('@listener api' back).

Expected JSON is a pattern: objects must have exactly the keys given (a "...": "..." member
allows others), arrays exactly the elements given, other values must be equal. A string may
instead be a placeholder: $any, $string (non-empty), $int, $number, $bool, $uuid, $jwt, $iso
(ISO 8601 time), $code (a meeting join code), $hex16, $time (Unix seconds near now), $ms (Unix
milliseconds near now), $array, $object, or $re:REGEX (a string the regex finds a match in).
"$uuid:mid" also captures the value as variable mid. "${mid}" anywhere in a request, header
or expected string is replaced by the variable; an expected string that is exactly "${mid}"
must equal the captured value, whatever its type. Built in: ${RUN} (unique per file and run),
${ADMIN_TOKEN}, ${HTTP_PORT}, ${TURN_PORT}, and what the runner adds (api_cases.py: tokens it
crafts). Header patterns: a literal, a placeholder, or $absent.

WebSocket scripts add people and connections:

    @users dave                      signs up users: ${dave_token}, ${dave_uid}, ${dave_email}
    @meeting m: alice bob carol      signs up each, the first creates meeting m (${m},
                                     ${m_code}), all join: ${alice_sig} (signaling token),
                                     ${alice_pid} (participant id), and the above
    connect alice                    opens /api/v1/signaling?token=${alice_sig}
    connect eve ?token=garbage       ... with this query ('?' alone: none)
    connect eve /api/v1/other ?...   ... on another path
    alice > {"type": "ping", "id": "p1"}    sends a text frame (any text: invalid JSON too)
    alice >*300 {"type": "ping"}     sends it 300 times, in one write
    alice >bin 00ff                  sends a binary frame (hex)
    alice >size 70000                sends a chat message of that many bytes
    alice < {"type": "pong", ...}    the first message of that type (others wait their turn)
                                     must match the pattern
    alice next {"type": "pong", ...} the first message, whatever its type, must match
    alice quiet 0.5 [TYPE]           nothing (of TYPE) arrives within 0.5 s
    alice closed 4006 binary_frame   the server closes with this code (and reason); "http:404":
                                     the upgrade was answered with that status; "refused": it
                                     was not accepted at all (any status, or none)
    alice close [CODE]               the client closes
    alice drop                       the TCP connection is cut, without a close frame
    sleep 0.2
"""

import asyncio
import http.client
import json
import os
import re
import socket
import time

PLACEHOLDERS = ("any", "string", "int", "number", "bool", "uuid", "jwt", "iso", "code", "hex16",
                "time", "ms", "array", "object", "re")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
JWT_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
ISO_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)")
CODE_RE = re.compile(r"[a-z]{3}-[a-z]{4}-[a-z]{3}")
VAR_RE = re.compile(r"\$\{(\w+)\}")


class CaseError(Exception):
    """A step whose answer differs from what the file expects (or that cannot run)."""


# ---------------------------------------------------------------- variables and patterns

def subst(text, env):
    def one(m):
        if m.group(1) not in env:
            raise CaseError("unknown variable ${%s}" % m.group(1))
        return str(env[m.group(1)])
    return VAR_RE.sub(one, text)


def _placeholder_ok(kind, arg, v):
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(v, str) and v != ""
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "bool":
        return isinstance(v, bool)
    if kind == "array":
        return isinstance(v, list)
    if kind == "object":
        return isinstance(v, dict)
    if kind == "time":
        return isinstance(v, int) and not isinstance(v, bool) and abs(v - time.time()) < 3 * 86400
    if kind == "ms":
        return isinstance(v, int) and abs(v / 1000 - time.time()) < 3 * 86400
    if not isinstance(v, str):
        return False
    if kind == "re":
        return re.search(arg, v) is not None  # variables already put in (match)
    rx = {"uuid": UUID_RE, "jwt": JWT_RE, "iso": ISO_RE, "code": CODE_RE,
          "hex16": re.compile(r"[0-9a-f]{16}")}[kind]
    return rx.fullmatch(v) is not None


def match(pattern, actual, env, path="$"):
    """Raises CaseError naming the first place where actual does not fit pattern; captures
    variables into env on the way."""
    if isinstance(pattern, str) and pattern.startswith("$") and not pattern.startswith("${") \
            and not pattern.startswith("$$"):
        body = pattern[1:]
        kind, _, arg = body.partition(":")
        if kind == "re":
            arg = VAR_RE.sub(lambda m: re.escape(str(env.get(m.group(1), ""))), arg)
        if kind not in PLACEHOLDERS:
            raise CaseError("%s: unknown placeholder %s" % (path, pattern))
        if not _placeholder_ok(kind, arg, actual):
            raise CaseError("%s: %r is not %s" % (path, actual, pattern))
        if arg and kind != "re":
            env[arg] = actual
        return
    if isinstance(pattern, str):
        whole = VAR_RE.fullmatch(pattern)
        if whole:
            if whole.group(1) not in env:
                raise CaseError("unknown variable ${%s}" % whole.group(1))
            want = env[whole.group(1)]
        else:
            want = subst(pattern[1:] if pattern.startswith("$$") else pattern, env)
        if actual != want or type(actual) is not type(want):
            raise CaseError("%s: got %r, want %r" % (path, actual, want))
        return
    if isinstance(pattern, dict):
        if not isinstance(actual, dict):
            raise CaseError("%s: got %r, want an object" % (path, actual))
        keys = [k for k in pattern if k != "..."]
        missing = [k for k in keys if k not in actual]
        extra = [k for k in actual if k not in pattern] if "..." not in pattern else []
        if missing or extra:
            raise CaseError("%s: members missing %s, unexpected %s (got %s)" %
                            (path, missing, extra, json.dumps(actual)[:300]))
        for k in keys:
            match(pattern[k], actual[k], env, "%s.%s" % (path, k))
        return
    if isinstance(pattern, list):
        if not isinstance(actual, list) or len(actual) != len(pattern):
            raise CaseError("%s: got %s, want %d elements" % (path, json.dumps(actual)[:300],
                                                               len(pattern)))
        for i, (p, a) in enumerate(zip(pattern, actual)):
            match(p, a, env, "%s[%d]" % (path, i))
        return
    if actual != pattern or type(actual) is not type(pattern):
        raise CaseError("%s: got %r, want %r" % (path, actual, pattern))


def match_header(name, pattern, headers, env):
    value = headers.get(name.lower())
    if pattern == "$absent":
        if value is not None:
            raise CaseError("header %s: present (%r), want none" % (name, value))
        return
    if value is None:
        raise CaseError("header %s: absent" % name)
    if pattern.startswith("$") and not pattern.startswith("${"):
        kind = pattern[1:].partition(":")[0]
        if kind in ("int", "time"):
            try:
                value = int(value)
            except ValueError:
                raise CaseError("header %s: %r is not %s" % (name, value, pattern))
        match(pattern, value, env, "header " + name)
        return
    want = subst(pattern, env)
    if value != want:
        raise CaseError("header %s: got %r, want %r" % (name, value, want))


# ---------------------------------------------------------------- parsing

class Step:
    def __init__(self, kind, line, desc, **kw):
        self.kind, self.line, self.desc = kind, line, desc
        self.__dict__.update(kw)


def _strip(line):
    """A '>' or '<' line without its mark and the one space after it."""
    rest = line[1:]
    return rest[1:] if rest.startswith(" ") else rest


def parse(path):
    """The steps of a case or script file."""
    lines = open(path, encoding="utf-8").read().split("\n")
    steps, desc, listener, i = [], "", "api", 0
    while i < len(lines):
        line, no = lines[i].rstrip("\r"), i + 1
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("#"):
            desc = stripped.lstrip("#").strip()
            i += 1
            continue
        if stripped.startswith("@listener"):
            listener = stripped.split()[1]
            if listener not in ("api", "admin"):
                raise CaseError("%s:%d: listener api or admin" % (path, no))
            i += 1
            continue
        if line.startswith(">"):
            req, exp = [], []
            while i < len(lines) and lines[i].startswith(">"):
                req.append(_strip(lines[i].rstrip("\r")))
                i += 1
            while i < len(lines) and lines[i].startswith("<"):
                exp.append(_strip(lines[i].rstrip("\r")))
                i += 1
            if not exp:
                raise CaseError("%s:%d: a request without an expected answer" % (path, no))
            steps.append(_http_step(path, no, desc, listener, req, exp))
            continue
        steps.append(_script_step(path, no, desc, stripped))
        i += 1
    return steps


def _split_head(lines):
    """Header lines up to the first empty one, and what follows."""
    for k, line in enumerate(lines):
        if line == "":
            return lines[:k], lines[k + 1:]
    return lines, []


def _http_step(path, no, desc, listener, req, exp):
    raw = None
    if req[0] == "RAW":
        raw, req = req[1:], []
        method = target = None
        headers, body = [], None
    else:
        parts = req[0].split(None, 1)
        if len(parts) != 2:
            raise CaseError("%s:%d: expected '> METHOD PATH'" % (path, no))
        method, target = parts
        headers, body_lines = _split_head(req[1:])
        body = "\n".join(body_lines) if body_lines else None
    status_line = exp[0].split()
    if not status_line or not status_line[0].isdigit():
        raise CaseError("%s:%d: expected '< STATUS'" % (path, no))
    exp_headers, exp_body = _split_head(exp[1:])
    pattern = None
    if exp_body:
        try:
            pattern = json.loads("\n".join(exp_body))
        except ValueError as e:
            raise CaseError("%s:%d: the expected JSON does not parse: %s" % (path, no, e))
    return Step("http", no, desc, listener=listener, method=method, target=target,
                headers=[h.split(":", 1) for h in headers], body=body, raw=raw,
                status=int(status_line[0]),
                exp_headers=[(h.split(":", 1)[0].strip(), h.split(":", 1)[1].strip())
                             for h in exp_headers],
                pattern=pattern)


def _script_step(path, no, desc, line):
    words = line.split()
    if line.startswith("@users"):
        return Step("users", no, desc, names=words[1:])
    if line.startswith("@meeting"):
        head, _, people = line[len("@meeting"):].partition(":")
        return Step("meeting", no, desc, name=head.strip(), people=people.split())
    if words[0] == "sleep":
        return Step("sleep", no, desc, seconds=float(words[1]))
    if words[0] == "connect":
        name, rest = words[1], words[2:]
        ws_path, query = "/api/v1/signaling", None
        for w in rest:
            if w.startswith("?"):
                query = w[1:]
            elif w.startswith("/"):
                ws_path = w
        return Step("connect", no, desc, name=name, path=ws_path, query=query)
    name, verb = words[0], words[1] if len(words) > 1 else ""
    rest = line.split(None, 2)[2] if len(words) > 2 else ""
    if verb == ">":
        return Step("send", no, desc, name=name, text=rest, count=1)
    if verb.startswith(">*"):
        return Step("send", no, desc, name=name, text=rest, count=int(verb[2:]))
    if verb == ">bin":
        return Step("sendbin", no, desc, name=name, data=bytes.fromhex(rest.replace(" ", "")))
    if verb == ">size":
        return Step("sendsize", no, desc, name=name, size=int(rest))
    if verb in ("<", "next"):
        try:
            pattern = json.loads(rest)
        except ValueError as e:
            raise CaseError("%s:%d: the expected JSON does not parse: %s" % (path, no, e))
        if not isinstance(pattern, dict) or not isinstance(pattern.get("type"), str):
            raise CaseError("%s:%d: an expected message names its type" % (path, no))
        return Step("expect", no, desc, name=name, pattern=pattern, next=verb == "next")
    if verb == "quiet":
        args = rest.split()
        return Step("quiet", no, desc, name=name, seconds=float(args[0]) if args else 0.5,
                    type=args[1] if len(args) > 1 else None)
    if verb == "closed":
        args = rest.split()
        return Step("closed", no, desc, name=name, code=args[0],
                    reason=args[1] if len(args) > 1 else None)
    if verb == "close":
        return Step("close", no, desc, name=name, code=int(rest) if rest else 1000)
    if verb == "drop":
        return Step("drop", no, desc, name=name)
    raise CaseError("%s:%d: cannot read %r" % (path, no, line))


# ---------------------------------------------------------------- running

class Target:
    """Where the steps go: the daemon's ports and the variables every file starts with."""

    def __init__(self, http_port, admin_port, turn_port, admin_token, env=None):
        self.http_port, self.admin_port = http_port, admin_port
        self.turn_port, self.admin_token = turn_port, admin_token
        self.env = dict(env or {})


def _http(target, step, env):
    port = target.admin_port if step.listener == "admin" else target.http_port
    if step.raw is not None:
        data = ("\r\n".join(subst(l, env) for l in step.raw) + "\r\n").encode()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        out = b""
        try:
            s.sendall(data)
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    break
                out += chunk
                head, sep, rest = out.partition(b"\r\n\r\n")
                if sep:
                    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    if m and len(rest) >= int(m.group(1)):
                        break
        finally:
            s.close()
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1."):
            raise CaseError("no HTTP answer: %r" % out[:200])
        status = int(lines[0].split()[1])
        headers = {}
        for h in lines[1:]:
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers, body
    headers = {k.strip(): subst(v.strip(), env) for k, v in step.headers}
    body = subst(step.body, env).encode() if step.body is not None else None
    if body and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(step.method, subst(step.target, env), body=body, headers=headers)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def run_http(target, step, env):
    status, headers, body = _http(target, step, env)
    problems = []
    if status != step.status:
        problems.append("status %d, want %d" % (status, step.status))
    if step.pattern is not None:
        try:
            got = json.loads(body)
        except ValueError:
            problems.append("the body is not JSON: %r" % body[:200])
        else:
            try:
                match(step.pattern, got, env)
            except CaseError as e:
                problems.append(str(e))
    # after the body, so that a header may name what the body gave (Location: .../${id})
    for name, pattern in step.exp_headers:
        try:
            match_header(name, pattern, headers, env)
        except CaseError as e:
            problems.append(str(e))
    if problems:
        raise CaseError("; ".join(problems) + "\n  answer: %d %s" % (status, body[:600]))


def api_call(target, method, path, body=None, token=None):
    h = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if token:
        h["Authorization"] = "Bearer " + token
    c = http.client.HTTPConnection("127.0.0.1", target.http_port, timeout=30)
    try:
        c.request(method, path, body=data if data is not None else (b"" if method == "POST" else None),
                  headers=h)
        r = c.getresponse()
        raw = r.read()
        return r.status, json.loads(raw) if raw else None
    finally:
        c.close()


def _person(target, env, name):
    email = "%s-%s@example.org" % (name, env["RUN"])
    status, j = api_call(target, "POST", "/api/v1/auth/signup",
                         {"email": email, "password": "correct horse",
                          "display_name": name.capitalize()})
    if status != 201:
        raise CaseError("signup of %s: %d %r" % (name, status, j))
    env[name + "_token"], env[name + "_uid"], env[name + "_email"] = \
        j["token"], j["user"]["id"], email


def setup_users(target, step, env):
    for n in step.names:
        _person(target, env, n)


def setup_meeting(target, step, env):
    for n in step.people:
        if n + "_token" not in env:
            _person(target, env, n)
    status, m = api_call(target, "POST", "/api/v1/meetings", {"title": "Script " + step.name},
                         env[step.people[0] + "_token"])
    if status != 201:
        raise CaseError("create meeting: %d %r" % (status, m))
    env[step.name], env[step.name + "_code"] = m["id"], m["code"]
    for n in step.people:
        status, j = api_call(target, "POST", "/api/v1/meetings/%s/join" % m["id"], None,
                             env[n + "_token"])
        if status != 200:
            raise CaseError("join of %s: %d %r" % (n, status, j))
        env[n + "_sig"], env[n + "_pid"] = j["signaling_token"], j["participant_id"]


class Conn:
    """One WebSocket: every message received is kept until a step takes it."""

    def __init__(self):
        self.ws, self.backlog, self.refused, self.close_code = None, [], None, None
        self.close_reason = None

    async def _recv(self, timeout):
        import websockets
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed as e:
            self.close_code, self.close_reason = e.code, e.reason
            raise
        try:
            return json.loads(raw)
        except (ValueError, TypeError):
            return {"type": "(not JSON)", "raw": repr(raw)[:200]}

    async def take(self, type_, timeout):
        """The first message of type_ (None: the first message, whatever its type)."""
        import websockets
        for i, m in enumerate(self.backlog):
            if type_ is None or m.get("type") == type_:
                return self.backlog.pop(i)
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise CaseError("no %s within %ss; waiting: %s" % (
                    type_, timeout, json.dumps(self.backlog[-4:])[:600]))
            try:
                m = await self._recv(left)
            except asyncio.TimeoutError:
                continue
            except websockets.ConnectionClosed:
                raise CaseError("closed %s %s before a %s came; waiting: %s" % (
                    self.close_code, self.close_reason, type_, json.dumps(self.backlog[-4:])[:600]))
            if type_ is None or m.get("type") == type_:
                return m
            self.backlog.append(m)


async def run_ws_step(target, step, env, conns):
    import websockets
    if step.kind == "connect":
        q = step.query if step.query is not None else "token=" + env[step.name + "_sig"]
        q = subst(q, env)
        url = "ws://127.0.0.1:%d%s%s" % (target.http_port, subst(step.path, env),
                                         "?" + q if q else "")
        c = Conn()
        conns[step.name] = c
        try:
            c.ws = await asyncio.wait_for(websockets.connect(url, ping_interval=None,
                                                             max_size=2 ** 22, open_timeout=10), 15)
        except websockets.InvalidStatusCode as e:
            c.refused = "http:%d" % e.status_code
        except (websockets.exceptions.InvalidHandshake, websockets.ConnectionClosed, OSError,
                asyncio.TimeoutError) as e:
            c.refused = "refused (%s)" % type(e).__name__
        return
    c = conns.get(step.name)
    if c is None:
        raise CaseError("no connection named %s" % step.name)
    if step.kind in ("send", "sendbin", "sendsize") and c.ws is None:
        raise CaseError("%s is not connected (%s)" % (step.name, c.refused))
    if step.kind == "send" and step.count > 1:
        # N copies in one write, so that they arrive together: the server reads them at once
        # (what follows a limit's close is then never left unread in its socket, which would
        # reset the connection and lose the close frame), and the rate it sees is not ours
        from websockets.frames import Frame, Opcode
        one = Frame(Opcode.TEXT, subst(step.text, env).encode()).serialize(mask=True)
        c.ws.transport.write(one * step.count)
        await asyncio.sleep(0)
        return
    if step.kind in ("send", "sendbin", "sendsize"):
        if step.kind == "send":
            frames = [subst(step.text, env)] * step.count
        elif step.kind == "sendbin":
            frames = [step.data]
        else:
            head = '{"type":"chat","payload":{"text":"'
            frames = [head + "x" * (step.size - len(head) - 3) + '"}}']
        for f in frames:
            try:
                await c.ws.send(f)
            except websockets.ConnectionClosed as e:
                # the server closed it under way (a limit): a later "closed" step judges
                if c.close_code is None and e.rcvd is not None:
                    c.close_code, c.close_reason = e.rcvd.code, e.rcvd.reason
                break
    elif step.kind == "expect":
        m = await c.take(None if step.next else step.pattern["type"], 10)
        match(step.pattern, m, env)
    elif step.kind == "quiet":
        if any(step.type is None or m.get("type") == step.type for m in c.backlog):
            raise CaseError("already waiting: %s" % json.dumps(c.backlog)[:600])
        deadline = time.time() + step.seconds
        while time.time() < deadline:
            try:
                m = await c._recv(deadline - time.time())
            except asyncio.TimeoutError:
                break
            except websockets.ConnectionClosed:
                raise CaseError("closed %s %s" % (c.close_code, c.close_reason))
            c.backlog.append(m)
            if step.type is None or m.get("type") == step.type:
                raise CaseError("received %s" % json.dumps(m)[:600])
    elif step.kind == "closed":
        if c.refused:
            got = ("refused" if step.code == "refused" else c.refused, None)
        else:
            deadline = time.time() + 10
            while c.close_code is None and time.time() < deadline:
                try:
                    c.backlog.append(await c._recv(deadline - time.time()))
                except asyncio.TimeoutError:
                    break
                except websockets.ConnectionClosed:
                    break
            got = (str(c.close_code) if c.close_code is not None else None, c.close_reason)
        if got[0] != step.code or (step.reason is not None and got[1] != step.reason):
            raise CaseError("closed with %s %s, want %s %s" % (got[0], got[1], step.code,
                                                                step.reason or ""))
    elif step.kind == "close":
        await c.ws.close(code=step.code)
    elif step.kind == "drop":
        c.ws.transport.abort()


async def _run_file(target, path, steps, env, tap, loop_http):
    conns = {}
    try:
        for st in steps:
            desc = "%s:%d %s" % (os.path.basename(path), st.line, st.desc)
            try:
                if st.kind == "http":
                    await loop_http(run_http, target, st, env)
                elif st.kind == "users":
                    await loop_http(setup_users, target, st, env)
                    continue
                elif st.kind == "meeting":
                    await loop_http(setup_meeting, target, st, env)
                    continue
                elif st.kind == "sleep":
                    await asyncio.sleep(st.seconds)
                    continue
                else:
                    await run_ws_step(target, st, env, conns)
                    if st.kind in ("connect", "send", "sendbin", "sendsize", "close", "drop"):
                        continue
            except CaseError as e:
                tap.ok(False, desc, str(e))
                continue
            except Exception as e:  # a step that could not even run fails, and the file goes on
                tap.ok(False, desc, "%s: %s" % (type(e).__name__, e))
                continue
            tap.ok(True, desc)
    finally:
        for c in conns.values():
            if c.ws is not None:
                await c.ws.close()


def run_file(target, path, index, tap):
    """Runs one file's steps, one TAP line for each exchange and expectation."""
    env = dict(target.env)
    env.update({"RUN": "%s-%d" % (os.urandom(4).hex(), index), "ADMIN_TOKEN": target.admin_token,
                "HTTP_PORT": target.http_port, "TURN_PORT": target.turn_port})
    try:
        steps = parse(path)
    except (CaseError, OSError) as e:
        tap.ok(False, "%s reads" % os.path.basename(path), str(e))
        return
    if path.endswith(".case") and any(s.kind not in ("http",) for s in steps):
        tap.ok(False, "%s: an HTTP case holds HTTP exchanges only" % os.path.basename(path))
        return

    async def loop_http(fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, fn, *args)

    asyncio.run(_run_file(target, path, steps, env, tap, loop_http))


def self_check(tap):
    """The matcher refuses what it must: a case can only pass when its answer fits."""
    env = {"x": "abc", "n": 3}
    wrong = [({"a": 1}, {"a": 1, "b": 2}), ({"a": 1}, {}), ([1, 2], [1]), (1, True), (1, "1"),
             ("$uuid", "not-a-uuid"), ("$int", 1.5), ("$int", True), ("$jwt", "a.b"),
             ("$iso", "yesterday"), ("$code", "abc-defg-hi"), ("${x}", "abd"), ("${n}", "3"),
             ("$re:^err", "no error"), ("$string", ""), ("$time", 5), ({"a": "$any"}, {}),
             (None, 0), ("x-${x}", "x-abd")]
    refused = 0
    for p, a in wrong:
        try:
            match(p, a, dict(env))
        except CaseError:
            refused += 1
    right = [({"a": "$uuid:u", "...": "..."}, {"a": "0f4e8c1a-5d7e-4a6b-9c3d-2e1f0a9b8c7d", "b": 1}),
             ("$any", None), ("${n}", 3), ("x-${x}", "x-abc"), ("$$literal", "$literal"),
             ("$re:rr", "error"), ("$time", int(time.time()))]
    accepted = 0
    for p, a in right:
        try:
            match(p, a, dict(env))
            accepted += 1
        except CaseError:
            pass
    tap.ok(refused == len(wrong) and accepted == len(right),
           "the matcher refuses %d wrong answers and accepts %d right ones" % (len(wrong), len(right)),
           "refused %d of %d, accepted %d of %d" % (refused, len(wrong), accepted, len(right)))
