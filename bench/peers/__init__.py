"""`make bench-peers`: Sluice next to the Python task queues people use today.

`run.py` is the harness; `driver.py` runs one system's workloads inside that system's
virtualenv; each `<system>_.py` is the plug-in for one system (see `base.System`).
"""
