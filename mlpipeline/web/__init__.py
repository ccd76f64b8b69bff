"""``mlpipeline serve``: the dashboard — runs, curves, compare, a search as a whole
(``searchpage``), the live queue — and the place to steer the queue from a browser.

It reads the ledger through the same library functions as the CLI
(``queries``, ``status``), steers only through the configs and the requests
table, and never imports a model script: uploads and ``predict`` run in child
processes. ``guard`` holds what keeps it safe on a shared machine (a token,
a Host allowlist, Origin checks, paths confined to the project).
"""
