"""Headless Chromium for meetlite's tests: playwright-core installed from the npm registry into
the build tree (never into the source tree, never a downloaded browser), Debian's chromium."""

import os
import shutil
import subprocess

from mltest import TOP_BUILDDIR, TOP_SRCDIR

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def node_dir():
    """A directory with the browser tests' scripts and their node_modules, made on first use."""
    src = os.path.join(TOP_SRCDIR, "tests", "browser")
    dst = os.path.join(TOP_BUILDDIR, "tests", "browser-run")
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        if name.endswith((".mjs", ".json", ".html", ".js", ".css")):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    if not os.path.isdir(os.path.join(dst, "node_modules", "playwright-core")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=dst,
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError("npm ci failed:\n" + r.stdout + r.stderr)
    return dst


def loopback_only():
    """True when no interface but loopback has an address (Chromium then needs a flag)."""
    out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True).stdout
    return all(line.split()[1] == "lo" for line in out.splitlines() if " inet" in line)


def output_dir(name):
    d = os.path.join(TOP_BUILDDIR, "tests", "output", name)
    os.makedirs(d, exist_ok=True)
    return d
