"""What connects to the original tool's files and commands: importing its recorded runs (``legacy_import``),
2.x's ``mlpipeline run``/``test`` (``cli2x``)."""
