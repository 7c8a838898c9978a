"""Crash-safety ("chaos") harness: `python -m chaos.run` (or `make chaos`).

It runs real `sluice server` and `sluice worker` processes on one SQLite database,
submits a mixed load, kills the server and workers with SIGKILL at seeded random
moments, and then audits the database and the workers' execution journals.
"""
