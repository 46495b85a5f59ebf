"""Network namespaces for the network tier (tests/netns, needs root): commands run in them,
their making and deleting, and programs started inside one under their own PID."""

import os
import subprocess


def sh(*argv, check=True, ns=None, input=None):
    """Runs a command (in namespace ns when given); its output. A failure raises RuntimeError
    with the command and its stderr, unless check is false."""
    if ns:
        argv = ("ip", "netns", "exec", ns) + argv
    r = subprocess.run(argv, capture_output=True, text=True, input=input)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r.stdout


def run_suffix():
    """The suffix of this run's namespace names: the test process's PID in hex (at most 6
    characters), so that a later run can tell a namespace whose run is gone (reap_stale)."""
    return "%x" % os.getpid()


def reap_stale(prefixes):
    """Deletes the namespaces "<prefix>-<suffix>" of earlier runs whose process no longer exists:
    a run killed with SIGKILL (make's hard timeout, an OOM kill) cannot delete its own."""
    gone = []
    for ns in sh("ip", "netns", "list", check=False).split():
        for p in prefixes:
            if not ns.startswith(p + "-"):
                continue
            try:
                pid = int(ns[len(p) + 1:], 16)
            except ValueError:
                continue
            if pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
                continue  # its run is alive (or the PID is another process's now)
            except ProcessLookupError:
                pass
            except (PermissionError, OverflowError):
                continue
            gone.append(ns)
    delete_namespaces(gone)
    return gone


def add_namespaces(names):
    """Makes each namespace of names, its loopback up."""
    for ns in names:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")


def delete_namespaces(names):
    """Deletes each namespace of names that exists (errors ignored: cleanup after a failure)."""
    for ns in names:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def namespaces_left(suffix):
    """The namespaces whose names end with suffix (a run's random one) that still exist."""
    return [ns for ns in sh("ip", "netns", "list", check=False).split() if ns.endswith(suffix)]


def in_namespace(tmp, ns, binary):
    """A script in tmp that runs binary in namespace ns with its arguments; exec all the way, so
    the PID a caller starts is the program's (stopped by it)."""
    path = os.path.join(tmp, "run-%s-%s" % (ns, os.path.basename(binary)))
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexec ip netns exec %s %s "$@"\n' % (ns, binary))
    os.chmod(path, 0o755)
    return path
