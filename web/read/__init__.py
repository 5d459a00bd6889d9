"""The read API: what a tenant's read secret may ask of the stored events.

Views (Faust pages): ``access`` (the read secret's tenant, the base of every read view),
``events`` (``/v1/query/events``, ``/v1/query/loss``), ``stats`` (``/v1/stats/...``) and
``dashboard`` (``/dashboard``).
"""
