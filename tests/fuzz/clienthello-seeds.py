#!/usr/bin/python3
"""Makes the seed corpus of fuzz_clienthello: the ClientHellos real clients send, captured on a
loopback listener that reads the first bytes and closes, and the same hellos cut into many small
TLS records (RFC 8446 5.1 allows any fragmentation of a handshake message).

    python3 tests/fuzz/clienthello-seeds.py tests/fuzz/corpus/clienthello

Clients: openssl s_client (several ALPN offers, SNI, TLS 1.2 only), curl (HTTP/1.1 and h2),
Python's ssl module, and headless Chromium when /usr/bin/chromium is there. A client that is
missing is reported and skipped: the corpus is seeds, not a test."""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading


def capture(run):
    """Starts a listener, runs run(port) in a thread, returns the first bytes it sent."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(20)
    port = srv.getsockname()[1]
    t = threading.Thread(target=run, args=(port,), daemon=True)
    t.start()
    try:
        c, _ = srv.accept()
    except socket.timeout:
        return None
    c.settimeout(2)
    data = b""
    while True:  # until the hello is whole: records of a handshake message
        try:
            chunk = c.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
        if hello_len(data):
            break
    c.close()
    srv.close()
    t.join(10)
    return data


def hello_len(data):
    """Bytes of records holding a whole first handshake message, or 0."""
    msg, off = b"", 0
    while off + 5 <= len(data):
        n = int.from_bytes(data[off + 3:off + 5], "big")
        if off + 5 + n > len(data):
            return 0
        msg += data[off + 5:off + 5 + n]
        off += 5 + n
        if len(msg) >= 4 and len(msg) >= 4 + int.from_bytes(msg[1:4], "big"):
            return off
    return 0


def refragment(data, size):
    """The hello's handshake message again, in records of at most size bytes."""
    msg, off = b"", 0
    while off + 5 <= len(data):
        n = int.from_bytes(data[off + 3:off + 5], "big")
        msg += data[off + 5:off + 5 + n]
        off += 5 + n
    out = b""
    for i in range(0, len(msg), size):
        part = msg[i:i + size]
        out += b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part
    return out


def openssl(args):
    def run(port):
        subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + args,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)
    return run


def curl(args):
    def run(port):
        subprocess.run(["curl", "-sk", "-m", "5"] + args + ["https://localhost:%d/" % port],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    return run


def python(alpn):
    def run(port):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if alpn:
            ctx.set_alpn_protocols(alpn)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                ctx.wrap_socket(s, server_hostname="meet.example.org")
        except OSError:
            pass
    return run


def chromium(port):
    exe = shutil.which("chromium")
    if not exe:
        return
    try:
        subprocess.run([exe, "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--user-data-dir=/tmp/ch-seed-%d" % os.getpid(),
                        "--timeout=3000", "--dump-dom", "https://localhost:%d/" % port],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=15)
    except subprocess.TimeoutExpired:
        pass
    shutil.rmtree("/tmp/ch-seed-%d" % os.getpid(), ignore_errors=True)


CLIENTS = [
    ("openssl-http11", openssl(["-alpn", "http/1.1"])),
    ("openssl-h2-http11", openssl(["-alpn", "h2,http/1.1", "-servername", "meet.example.org"])),
    ("openssl-h2", openssl(["-alpn", "h2"])),
    ("openssl-stun-turn", openssl(["-alpn", "stun.turn"])),
    ("openssl-http11-stun-turn", openssl(["-alpn", "http/1.1,stun.turn"])),
    ("openssl-none", openssl([])),
    ("openssl-tls12", openssl(["-tls1_2", "-alpn", "http/1.1", "-servername", "a.example"])),
    ("curl-http11", curl(["--http1.1"])),
    ("curl-h2", curl(["--http2"])),
    ("python-http11", python(["http/1.1"])),
    ("python-none", python(None)),
    ("chromium", chromium),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/clienthello"
    os.makedirs(out, exist_ok=True)
    for name, run in CLIENTS:
        data = capture(run)
        n = hello_len(data or b"")
        if not n:
            print("%s: no hello captured" % name, file=sys.stderr)
            continue
        hello = data[:n]
        with open(os.path.join(out, name), "wb") as f:
            f.write(hello)
        if name in ("openssl-h2-http11", "chromium"):
            for size in (1, 7, 100):
                with open(os.path.join(out, "%s-records-%d" % (name, size)), "wb") as f:
                    f.write(refragment(hello, size))
        print("%s: %d bytes" % (name, n))


if __name__ == "__main__":
    main()
