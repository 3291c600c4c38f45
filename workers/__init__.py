"""RQ jobs and their wiring: draining, the Parquet log, projections, trend flags, the DuckDB catalog."""
