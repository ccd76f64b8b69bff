"""The vocabulary every layer shares — statuses, modes, specs, events' records, decisions — with
errors, paths (``layout``), JSON rules and the clock's words. Imports nothing else of mlpipeline."""
