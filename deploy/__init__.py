"""Deployment tooling: one command per customer stage, any cloud (``deploy/mailpipe-deploy <stage>``).

``mailpipe.providers.yaml.stages`` loads and validates stages.yml (docs/stages.md); ``cli.py`` dispatches on
the stage's cloud to
``deploy/<cloud>.py``, each of which turns a Stage into the commands to run (``commands(stage, root)``).
Not part of any function bundle.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository checkout the tooling runs from
