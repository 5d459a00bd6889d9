"""The read API: what a tenant's read secret may ask of the stored events.

Pure, no I/O: ``request`` (a validated StatsRequest, QueryError), ``params`` (the query string
to a StatsRequest, one pydantic model per endpoint), ``sql`` (the statements) and ``shape``
(rows to JSON answers). Faust views: ``access`` (the read secret's tenant, the base of every
read view), ``events`` (``/v1/query/events``, ``/v1/query/loss``), ``stats`` (``/v1/stats/...``,
one table of endpoints) and ``dashboard`` (``/dashboard``).
"""
