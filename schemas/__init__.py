"""TrackFlow's contracts: event models, topic record shapes and the ClickHouse DDL."""
