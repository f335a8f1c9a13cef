"""GCP adapters: GCS store (``gs://bucket[/prefix]``), Pub/Sub publisher (``pubsub://project/topic``), and
pure decoders for Eventarc ``storage.object.v1.finalized`` CloudEvents and GCS notifications via Pub/Sub.

Expected resources (deploy/gcp.py generates the gcloud commands per stage): one bucket whose finalized objects
trigger the function through Eventarc (retry on failure, a dead-letter topic on the trigger's subscription);
the function's service account reads ``raw/`` and writes ``parsed/``, ``att/``, ``quarantine/``
(roles/storage.objectAdmin on the bucket) and publishes to the destination topic (roles/pubsub.publisher).
The SDKs are imported on first use; ``STORAGE_EMULATOR_HOST`` and ``PUBSUB_EMULATOR_HOST`` are honoured.
"""
