"""AWS adapters: S3 store (``s3://bucket[/prefix]``), SQS publisher (``sqs://name`` or the queue's https URL),
and pure decoders for S3 notifications (direct, via SQS, via SNS).

Expected resources (serverless.yml creates them per stage): one bucket whose ``raw/*.eml`` ObjectCreated
events go to an SQS queue with a dead-letter queue; the function reads ``raw/`` and writes ``parsed/``,
``att/`` and ``quarantine/``; a destination queue for notifications. boto3 is imported on first use only (the
Lambda runtime provides it); endpoints honour ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` / ``_SQS``.
"""
