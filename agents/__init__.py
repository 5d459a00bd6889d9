"""TrackFlow's stream stages: validate+enrich (raw -> processed / dead-letter) and the sink."""
