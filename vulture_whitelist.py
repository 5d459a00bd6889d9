"""Names vulture cannot see being used (`make lint`): each one is called or read by a framework,
by name or by position. Vulture reads this file as code that uses them; nothing imports it."""

# aiokafka's ConsumerRebalanceListener hook, called on a rebalance (agents/sink.py).
_.on_partitions_revoked
# mode's Service hooks: the sink's start and stop (agents/sink.py).
_.on_start
_.on_stop
# mode's Service stop steps, overridden by the in-loop Kafka consumer (trackflow_app/kafka.py).
_._stop_children
_._stop_futures
_._stop_exit_stacks
_.wait_for_shutdown
# faust.App builds its transport with this factory (trackflow_app/app.py and its unit test).
_._new_transport
# mode's Service name in log lines: keeps Faust's "[^Worker]" prefix (trackflow_app/app.py).
_._repr_name
# Model configuration of pydantic and pydantic-settings (schemas/events.py, settings.py).
_.model_config
# Keys of the tracker's event shapes (schemas/events.py), validated by pydantic and read as
# event["..."] strings.
_.deviceType
_.eventId
_.eventType
_.tenantId
_.sessionId
_.userId
_.pageUrl
_.deviceInfo
_.col
_.loadTime
_.domContentLoaded
# Keys of the ProcessedEvent TypedDict (schemas/records.py), read as row["..."] strings.
_.client_timestamp
_.page_url
# aiokafka's getmany keyword, in the sink's consumer protocol and its unit-test fake.
_.timeout_ms
# mode's signals pass the sender to every receiver (web/views.py, share_tenant_limits).
_.sender
# pytest calls its hooks and reads module marks by name.
_.pytest_collection_modifyitems
_.pytestmark
# tests/unit/test_gc_tuning.py: the Node's reference to itself is the cycle under test.
_.me
# asyncio.Protocol's callbacks and httptools' parser callback (bench/rawhttp.py).
_.connection_made
_.data_received
_.connection_lost
_.on_message_complete
# http.server's request handler hooks (tests/unit/test_post_seed_examples.py).
_.do_POST
_.log_message
