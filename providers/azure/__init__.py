"""Azure adapters: Blob store (``azblob://account/container[/prefix]``), Storage Queue publisher
(``azqueue://account/queue``, base64 bodies), and pure decoders for Event Grid
``Microsoft.Storage.BlobCreated`` (direct or through a storage queue) and the blob trigger.

Expected resources (deploy/azure.py generates the ARM template per stage): one storage account with the mail
container, an Event Grid system topic sending BlobCreated for ``raw/*.eml`` to the ``<stage>-events`` queue
(poison: ``<stage>-events-poison``), and the destination queue; the Function App's managed identity holds
Storage Blob Data Owner and Storage Queue Data Contributor. The SDKs are imported on first use; outside Azure
set ``AZURE_STORAGE_CONNECTION_STRING`` (e.g. azurite's devstoreaccount1 string).
"""
