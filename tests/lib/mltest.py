"""Shared helpers for meetlite's integration tests (Python standard library only).

TAP output, free loopback ports, the meetlited daemon started and stopped by PID with its log
checked for sanitizer reports, and a small STUN client used to talk to it.
"""

import atexit
import hashlib
import hmac
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib

MAGIC = 0x2112A442
TOP_BUILDDIR = os.environ.get("top_builddir", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TOP_SRCDIR = os.environ.get("top_srcdir", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
MEETLITED = os.environ.get("MEETLITED", os.path.join(TOP_BUILDDIR, "meetlited"))


# ---------------------------------------------------------------- TAP

class Tap:
    """Prints TAP lines; the automake TAP driver counts each one as a test."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self._done = False

    def ok(self, cond, desc, diag=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, desc), flush=True)
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.n, desc), flush=True)
            if diag is not None:
                for line in str(diag).splitlines()[-40:]:
                    print("# " + line, flush=True)
        return bool(cond)

    def eq(self, got, want, desc):
        return self.ok(got == want, desc, "got %r, want %r" % (got, want))

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# " + line, flush=True)

    def unexpected(self, e, *daemons, tail=4000):
        """An exception the test did not expect, as a failed check ("unexpected exception: <e>",
        its traceback the diagnostic), then the last tail characters of each daemon's log (None
        for one not started yet). Call it in the except clause."""
        self.ok(False, "unexpected exception: %r" % e, traceback.format_exc())
        for d in daemons:
            if d:
                self.diag(d.log()[-tail:])

    def done(self):
        if not self._done:
            self._done = True
            print("1..%d" % self.n, flush=True)
        return 1 if self.failed else 0

    def bail(self, msg):
        print("Bail out! %s" % msg, flush=True)
        sys.exit(1)


# ---------------------------------------------------------------- ports

def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def scratch_dir(prefix, base=None):
    """A temporary directory for a test's files (certificates, keys, configurations, logs),
    deleted with everything in it when the test's process exits."""
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    atexit.register(shutil.rmtree, d, True)
    return d


def free_port(family=socket.AF_INET, host="127.0.0.1", both=True):
    """A port free for UDP and (when both) TCP on host right now."""
    for _ in range(200):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind((host, 0))
        port = s.getsockname()[1]
        if both:
            t = socket.socket(family, socket.SOCK_STREAM)
            try:
                t.bind((host, port))
            except OSError:
                s.close()
                t.close()
                continue
            t.close()
        s.close()
        return port
    raise RuntimeError("no free port")


# ---------------------------------------------------------------- the daemon

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "AddressSanitizer:DEADLYSIGNAL")


class Daemon:
    """meetlited started with --set options; stopped by PID with SIGTERM.

    stop() returns (exit code, log text); clean() says whether the exit was orderly and the log
    has no sanitizer report. wrapper: a command prefix (e.g. tests/lib/deny-syscall ...).
    With ML_TEST_NET_IO=epoll|uring in the environment (the *_epoll.py variants of some tests)
    every daemon that does not choose net.io itself runs with it, and must log that it does.
    """

    def __init__(self, sets, config=None, binary=None, env=None, wait_for="ready", timeout=20,
                 preexec_fn=None, wrapper=None):
        self.binary = binary or MEETLITED
        self.args = list(wrapper or []) + [self.binary]
        if config:
            self.args += ["--config", config]
        sets = list(sets)
        forced_io = os.environ.get("ML_TEST_NET_IO")
        if forced_io and not any(s.startswith("net.io=") for s in sets):
            sets.append("net.io=" + forced_io)
        else:
            forced_io = None
        for s in sets:
            self.args += ["--set", s]
        self.logf = tempfile.NamedTemporaryFile(prefix="meetlited-", suffix=".log", delete=False)
        # close() deletes it; a test that only stop()s its daemon leaves it for the exit
        atexit.register(_unlink_quietly, self.logf.name)
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if env:
            e.update(env)
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT, env=e,
                                     preexec_fn=preexec_fn)
        self.rc = None
        if wait_for:
            self.wait_log(wait_for, timeout)
            if forced_io:
                self.wait_log("UDP data path: %s" % ("io_uring" if forced_io == "uring" else "epoll"), 1)

    def log(self):
        with open(self.logf.name, "r", errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                raise RuntimeError("meetlited exited (%s):\n%s" % (self.proc.returncode, self.log()))
            time.sleep(0.02)
        raise RuntimeError("meetlited did not log %r within %ss:\n%s" % (text, timeout, self.log()))

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        if self.rc is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.rc = self.proc.returncode
        text = self.log()
        return self.rc, text

    def clean(self):
        rc, text = self.stop()
        return rc == 0 and not any(m in text for m in SANITIZER_MARKS)

    def close(self):
        self.stop()
        try:
            os.unlink(self.logf.name)
        except OSError:
            pass

    def stop_checked(self, t, what="meetlited", tail=3000):
        """Stops the daemon, asserts on t that it stopped cleanly (the TAP line "<what> stops
        cleanly (no sanitizer report)", the log's tail as its diagnostic), removes the log file;
        the log's text."""
        rc, log = self.stop()
        t.ok(self.clean(), "%s stops cleanly (no sanitizer report)" % what, log[-tail:])
        self.close()
        return log


# ---------------------------------------------------------------- STUN

ATTR = {
    "MAPPED-ADDRESS": 0x0001, "USERNAME": 0x0006, "MESSAGE-INTEGRITY": 0x0008,
    "ERROR-CODE": 0x0009, "UNKNOWN-ATTRIBUTES": 0x000A, "CHANNEL-NUMBER": 0x000C,
    "LIFETIME": 0x000D, "XOR-PEER-ADDRESS": 0x0012, "DATA": 0x0013, "REALM": 0x0014,
    "NONCE": 0x0015, "XOR-RELAYED-ADDRESS": 0x0016, "REQUESTED-ADDRESS-FAMILY": 0x0017,
    "EVEN-PORT": 0x0018, "REQUESTED-TRANSPORT": 0x0019, "DONT-FRAGMENT": 0x001A,
    "MESSAGE-INTEGRITY-SHA256": 0x001C, "PASSWORD-ALGORITHM": 0x001D, "USERHASH": 0x001E,
    "XOR-MAPPED-ADDRESS": 0x0020, "RESERVATION-TOKEN": 0x0022, "CONNECTION-ID": 0x002A,
    "ADDITIONAL-ADDRESS-FAMILY": 0x8000, "ADDRESS-ERROR-CODE": 0x8001,
    "PASSWORD-ALGORITHMS": 0x8002, "SOFTWARE": 0x8022, "FINGERPRINT": 0x8028,
}

BINDING, ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 1, 3, 4, 6, 7, 8, 9
REQUEST, INDICATION, SUCCESS, ERROR = 0, 1, 2, 3


def msg_type(method, cls):
    return ((method & 0xF80) << 2) | ((method & 0x070) << 1) | (method & 0x00F) | \
        ((cls & 2) << 7) | ((cls & 1) << 4)


def split_type(t):
    method = ((t & 0x3E00) >> 2) | ((t & 0x00E0) >> 1) | (t & 0x000F)
    cls = ((t & 0x0100) >> 7) | ((t & 0x0010) >> 4)
    return method, cls


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def encode_addr(family_addr, xor_tid=None):
    host, port = family_addr[0], family_addr[1]
    if ":" in host:
        fam, raw = 2, socket.inet_pton(socket.AF_INET6, host)
    else:
        fam, raw = 1, socket.inet_pton(socket.AF_INET, host)
    if xor_tid is not None:
        port ^= MAGIC >> 16
        key = struct.pack("!I", MAGIC) + xor_tid
        raw = bytes(a ^ b for a, b in zip(raw, key))
    return struct.pack("!BBH", 0, fam, port) + raw


def decode_addr(v, xor_tid=None):
    fam, port = v[1], struct.unpack("!H", v[2:4])[0]
    raw = v[4:]
    if xor_tid is not None:
        port ^= MAGIC >> 16
        key = struct.pack("!I", MAGIC) + xor_tid
        raw = bytes(a ^ b for a, b in zip(raw, key))
    if fam == 1:
        return (socket.inet_ntop(socket.AF_INET, raw[:4]), port)
    return (socket.inet_ntop(socket.AF_INET6, raw[:16]), port)


class Msg:
    """A STUN message to build or a parsed one."""

    def __init__(self, method=BINDING, cls=REQUEST, tid=None, attrs=None):
        self.method, self.cls = method, cls
        self.tid = tid if tid is not None else os.urandom(12)
        self.attrs = list(attrs or [])  # (type, value bytes)

    def add(self, t, v):
        self.attrs.append((ATTR.get(t, t) if isinstance(t, str) else t, v))
        return self

    def get(self, t):
        t = ATTR.get(t, t) if isinstance(t, str) else t
        for at, v in self.attrs:
            if at == t:
                return v
        return None

    def error(self):
        v = self.get("ERROR-CODE")
        if v is None:
            return None
        return (v[2] & 7) * 100 + v[3]

    def xaddr(self, t):
        v = self.get(t)
        return decode_addr(v, self.tid) if v is not None else None

    def encode(self, key=None, sha256_key=None, fingerprint=False):
        body = b""
        for t, v in self.attrs:
            body += struct.pack("!HH", t, len(v)) + pad4(v)
        hdr_type = msg_type(self.method, self.cls)
        if key is not None:
            hdr = struct.pack("!HHI", hdr_type, len(body) + 24, MAGIC) + self.tid
            mac = hmac.new(key, hdr + body, hashlib.sha1).digest()
            body += struct.pack("!HH", 0x0008, 20) + mac
        if sha256_key is not None:
            hdr = struct.pack("!HHI", hdr_type, len(body) + 36, MAGIC) + self.tid
            mac = hmac.new(sha256_key, hdr + body, hashlib.sha256).digest()
            body += struct.pack("!HH", 0x001C, 32) + mac
        if fingerprint:
            hdr = struct.pack("!HHI", hdr_type, len(body) + 8, MAGIC) + self.tid
            crc = (zlib.crc32(hdr + body) ^ 0x5354554E) & 0xFFFFFFFF
            body += struct.pack("!HHI", 0x8028, 4, crc)
        return struct.pack("!HHI", hdr_type, len(body), MAGIC) + self.tid + body

    @staticmethod
    def decode(data):
        if len(data) < 20:
            raise ValueError("short")
        t, length, cookie = struct.unpack("!HHI", data[:8])
        if length + 20 != len(data):
            raise ValueError("length %d vs %d" % (length + 20, len(data)))
        method, cls = split_type(t)
        m = Msg(method, cls, data[8:20])
        m.cookie = cookie
        m.raw = data
        off = 20
        while off + 4 <= len(data):
            at, al = struct.unpack("!HH", data[off:off + 4])
            m.attrs.append((at, data[off + 4:off + 4 + al]))
            off += 4 + al + (-al % 4)
        return m


def fingerprint_ok(raw):
    """True when the message ends with a correct FINGERPRINT."""
    if len(raw) < 28 or struct.unpack("!H", raw[-8:-6])[0] != 0x8028:
        return False
    crc = (zlib.crc32(raw[:-8]) ^ 0x5354554E) & 0xFFFFFFFF
    return struct.unpack("!I", raw[-4:])[0] == crc


def udp_exchange(server, payload, timeout=2.0, family=socket.AF_INET, sock=None):
    """Sends payload to server over UDP, returns the reply bytes or None."""
    own = sock is None
    s = sock or socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(payload, server)
        data, _ = s.recvfrom(65536)
        return data
    except socket.timeout:
        return None
    finally:
        if own:
            s.close()


def recv_exact(sock, n, timeout=2.0):
    sock.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def recv_stun_stream(sock, timeout=2.0):
    """Reads one STUN message from a stream."""
    hdr = recv_exact(sock, 20, timeout)
    length = struct.unpack("!H", hdr[2:4])[0]
    return hdr + recv_exact(sock, length, timeout)


# ---------------------------------------------------------------- TURN REST credentials

def rest_credential(secret, ident, ttl=3600, now=None):
    """The TURN REST API scheme: username '<expiry>:<id>', password base64(HMAC-SHA1)."""
    import base64
    expiry = int((now if now is not None else time.time()) + ttl)
    user = "%d:%s" % (expiry, ident)
    pw = base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()).decode()
    return user, pw


def long_term_key(user, realm, password):
    return hashlib.md5(("%s:%s:%s" % (user, realm, password)).encode()).digest()


def random_tid():
    return bytes(random.getrandbits(8) for _ in range(12))
