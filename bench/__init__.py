"""TrackFlow ingestion benchmark: ``python -m bench.run --full|--short|--profile``."""
