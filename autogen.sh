#!/bin/sh
# Regenerates the build system (configure, Makefile.in, build-aux/) from configure.ac and Makefile.am.
set -e
cd "$(dirname "$0")"
mkdir -p m4 build-aux
autoreconf --force --install --warnings=all
