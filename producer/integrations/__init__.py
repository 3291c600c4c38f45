"""Framework integrations: pass a logger or a callback, never call a logging API by hand.

    from producer.integrations.lightning import EpochstreamLogger        # pip install epochstream[lightning]
    from producer.integrations.transformers import EpochstreamCallback   # pip install epochstream[transformers]
    from producer.integrations.keras import EpochstreamCallback          # pip install epochstream[keras]

Importing this package imports no framework: each module above imports its own when it is imported.
Every integration takes either `run=` (a `producer.Run` you started) or `start_run`'s arguments; framework
metric names become ours by the rule in `producer.integrations.names`.
"""
