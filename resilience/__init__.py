"""The resilience suite: the real `careline serve` process under crashes, faults and bad input.

Run it with `python -m resilience --quick` (a few minutes) or `--full` (10,000 updates from
200 chats). It starts the server and the fake platforms as subprocesses on 127.0.0.1, drives
them, kills and restarts what it started (by pid, nothing else), prints a table and exits
non-zero when anything was lost. See docs/resilience.md.
"""
