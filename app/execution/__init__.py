"""The execution core: typed commands (commands.py) routed by venue (core.py) to the paper executor
(paper_engine.py: in-memory venue, write-behind batches) or to per-account exchange workers (exchange.py); one
recorder (recorder.py) turns every venue's reports into transitions, fills, positions, exits and events."""
