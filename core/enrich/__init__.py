"""Enrichment: the contract (``contract``), the registry of enrichers, the view they read, the derived files
they return, and the runner (``run``)."""
