"""The loop: ``runner`` steps through the ``queue``, records through the ``recorder``, tells the
``observers``, drives the ``search``es and applies decisions; ``batch`` puts one together."""
