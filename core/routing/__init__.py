"""Routing: per-customer rules (``rules``, ``conditions``, ``facts``, ``validate``), their loader (``load``), the
plan of one message (``plan``), and its dispatch to queues and signed webhooks (``dispatch``, ``webhooks``,
``projections``, ``formdata``); ``replay`` re-sends dead-lettered webhooks."""
