"""Local Kafka broker and real worker processes, started on free ports for tests and benchmarks."""
