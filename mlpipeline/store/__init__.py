"""The ledger: every SQL statement against it lives here — the schema and its migrations, the
writer (``Ledger``), the read questions both sides share (``reads``), the read-only ``Reader``,
liveness, and the runner lock."""
