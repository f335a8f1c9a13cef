"""PyYAML adapters: routing rules (``rules``) and the edge's view of stages.yml (``stages``), with file:line errors.
Needs the ``rules`` extra."""
