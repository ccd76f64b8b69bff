"""Where versions execute. Every executor offers the same interface (``core.lifecycle.Executor``):
submit a job with a sink for its events, poll with a timeout, cancel warm or cold, report
capacity. The runner holds one without knowing which; ``run.batch`` picks it.

- ``inprocess``: in the runner's own process (test mode: a debugger works).
- ``local``: one child process per version (``childrun``), forked from a ``forkserver``; it owns
  pids, process groups and GPUs.
- ``raycluster``: Ray tasks, each running the same child on a node (``node``).
"""
