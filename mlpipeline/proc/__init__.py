"""Processes: one way to start a child (``spawn``), the events a version's child sends
(``protocol``), one table from an exception or an exit to an outcome (``outcome``), and the
markers, parent-death watch and cleanup every child shares (``system``)."""
