#!/usr/bin/env bash
# The benchmark against the peers: see bench/run.py --help.
exec python3 "$(dirname "$0")/run.py" "$@"
