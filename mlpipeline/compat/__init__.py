"""What connects to the original tool's files: importing its recorded runs (``legacy_import``)."""
