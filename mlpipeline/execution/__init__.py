"""Where versions execute. Every executor offers the same interface
(``base.Executor``): submit a job with a sink for its events, poll with a
timeout, cancel warm or cold, report capacity. The runner holds one without
knowing which; ``batch.run_batch`` picks it.

- ``inprocess.InProcessExecutor``: in the runner's own process (test mode, a debugger works).
- ``local.LocalExecutor``: one child process per version; owns pids, process groups and GPUs.
"""
