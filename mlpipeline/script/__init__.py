"""The script API's implementation: what runs inside a version's process (or a describe,
search, state or prediction child) — ``Versions``, ``Model``, metrics, reporting events, loading
and running a script. The original's import paths (``mlpipeline.helper``, ``.utils``, ...) are
thin modules over it."""
