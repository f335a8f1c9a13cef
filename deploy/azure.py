"""Azure stages: an ARM template (azuredeploy.json), host.json, function_app.py and the az commands (resource
group, template deployment, zip deploy) generated here; ``commands(stage, root)`` (for ``mailpipe-deploy``)
builds the bundle and runs the generated build/STAGE/deploy.sh.

Default wiring (``azure.trigger: queue``): Blob container -> Event Grid system topic, BlobCreated on
``raw/*.eml`` -> storage queue ``<stage>-events`` -> queue-trigger function; a message that keeps failing
moves to ``<stage>-events-poison`` after ``azure.max_dequeue_count`` (host.json). ``azure.trigger: eventgrid``
ships the Event Grid trigger app instead and subscribes it after the code is deployed. The app runs on a Flex
Consumption plan (FC1) with a system-assigned identity; no connection string or key is stored anywhere.
"""

from __future__ import annotations

import json
import shutil
import sys
from typing import TYPE_CHECKING, Any

from deploy import ROOT
from mailpipe.providers.yaml.stages import StageError

if TYPE_CHECKING:
    from pathlib import Path

    from mailpipe.providers.yaml.stages import Stage

NEEDS_FIRST = (
    "the Azure CLI logged in (`az login`, `az account set --subscription ...`) as Owner (or Contributor + "
    "User Access Administrator: the template assigns storage roles to the app's managed identity) of the "
    "subscription"
)

ROLES = {  # built-in role definition ids
    "blob_owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner (AzureWebJobsStorage)
    "queue_contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
}
APPS = {"queue": "handlers/azure_queue_function.py", "eventgrid": "handlers/azure_function.py"}


def names(stage: Stage) -> dict[str, str]:
    """Resource names derived from the stage."""
    az, stage_name = stage.extra, stage.name
    return {
        "account": az["storage_account"],
        "app": az["app_name"],
        "plan": f"{az['app_name']}-plan",
        "events": f"{stage_name}-events",
        "poison": f"{stage_name}-events-poison",
        "package": f"app-package-{az['app_name']}"[:63],
        "topic": f"{az['app_name']}-blob-events",
    }


def host_json(stage: Stage) -> dict[str, Any]:
    """host.json: queue retries (maxDequeueCount, then <queue>-poison), base64 messages, function timeout."""
    az, timeout = stage.extra, stage.timeout
    return {
        "version": "2.0",
        "functionTimeout": f"00:{timeout // 60:02d}:{timeout % 60:02d}",
        "extensionBundle": {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"},
        "extensions": {
            "queues": {
                "maxDequeueCount": int(az.get("max_dequeue_count", 5)),
                "messageEncoding": "base64",
                "batchSize": 8,
                "visibilityTimeout": "00:00:30",
            }
        },
    }


def secret_refs(stage: Stage, secrets: tuple[str, ...]) -> dict[str, str]:
    """App settings resolving the rules' secrets from ``azure.key_vault`` (Key Vault references, never
    values); the secret of env var ACME_X_SECRET is named ``acme-x-secret``. Raises StageError."""
    if not secrets:
        return {}
    vault = stage.extra.get("key_vault")
    if not vault:
        raise StageError(f"stage {stage.name!r}: its rules read secrets {list(secrets)}: set azure.key_vault")
    uri = f"https://{vault}.vault.azure.net/secrets"
    return {n: f"@Microsoft.KeyVault(SecretUri={uri}/{n.lower().replace('_', '-')}/)" for n in secrets}


def app_settings(stage: Stage, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The Function App's settings: identity-based connections, binding names, the MAILPIPE_* settings and
    ``extra`` (the stage files' paths, Key Vault references)."""
    n = names(stage)
    blob, queue = (
        f"https://{n['account']}.blob.core.windows.net",
        f"https://{n['account']}.queue.core.windows.net",
    )
    return {
        "AzureWebJobsStorage__accountName": n["account"],  # the host's own storage, by managed identity
        "MAILPIPE_STORAGE__blobServiceUri": blob,  # trigger connection, by managed identity
        "MAILPIPE_STORAGE__queueServiceUri": queue,
        "MAILPIPE_EVENTS_QUEUE": n["events"],
        "MAILPIPE_CONTAINER": stage.bucket,
        **stage.settings_env(),
        **(extra or {}),
    }


def _storage(n: dict[str, str], stage: Stage, location: str) -> list[dict[str, Any]]:
    dep = [f"[resourceId('Microsoft.Storage/storageAccounts', '{n['account']}')]"]
    res: list[dict[str, Any]] = [
        {
            "type": "Microsoft.Storage/storageAccounts",
            "apiVersion": "2023-01-01",
            "name": n["account"],
            "location": location,
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "properties": {
                "minimumTlsVersion": "TLS1_2",
                "allowBlobPublicAccess": False,
                "supportsHttpsTrafficOnly": True,
                "allowSharedKeyAccess": False,
            },
        }
    ]
    for container in (stage.bucket, n["package"]):
        res.append(
            {
                "type": "Microsoft.Storage/storageAccounts/blobServices/containers",
                "apiVersion": "2023-01-01",
                "name": f"{n['account']}/default/{container}",
                "dependsOn": dep,
            }
        )
    for queue in (n["events"], n["poison"], stage.queue):
        res.append(
            {
                "type": "Microsoft.Storage/storageAccounts/queueServices/queues",
                "apiVersion": "2023-01-01",
                "name": f"{n['account']}/default/{queue}",
                "dependsOn": dep,
            }
        )
    return res


def _function_app(stage: Stage, n: dict[str, str], location: str, extra: dict[str, str]) -> list[Any]:
    """The Flex Consumption plan and the Function App (Python 3.11, system-assigned identity)."""
    if stage.memory not in (512, 2048, 4096):
        raise StageError(f"stage {stage.name!r}: Flex Consumption instance memory is 512, 2048 or 4096 MB")
    plan_id = f"[resourceId('Microsoft.Web/serverfarms', '{n['plan']}')]"
    plan = {"type": "Microsoft.Web/serverfarms", "apiVersion": "2023-12-01", "name": n["plan"],
            "location": location, "kind": "functionapp", "sku": {"name": "FC1", "tier": "FlexConsumption"},
            "properties": {"reserved": True}}  # fmt: skip
    package = {"type": "blobContainer", "value": f"https://{n['account']}.blob.core.windows.net/{n['package']}",
               "authentication": {"type": "SystemAssignedIdentity"}}  # fmt: skip
    config = {"deployment": {"storage": package},
              "scaleAndConcurrency": {"maximumInstanceCount": int(stage.extra.get("max_instances", 40)),
                                      "instanceMemoryMB": stage.memory},
              "runtime": {"name": "python", "version": "3.11"}}  # fmt: skip
    settings = [{"name": k, "value": v} for k, v in app_settings(stage, extra).items()]
    site = {"type": "Microsoft.Web/sites", "apiVersion": "2023-12-01", "name": n["app"], "location": location,
            "kind": "functionapp,linux", "identity": {"type": "SystemAssigned"},
            "dependsOn": [plan_id, f"[resourceId('Microsoft.Storage/storageAccounts', '{n['account']}')]"],
            "properties": {"serverFarmId": plan_id, "httpsOnly": True,
                           "siteConfig": {"appSettings": settings}, "functionAppConfig": config}}  # fmt: skip
    return [plan, site]


def _roles(n: dict[str, str]) -> list[dict[str, Any]]:
    scope = f"Microsoft.Storage/storageAccounts/{n['account']}"
    app_id = f"resourceId('Microsoft.Web/sites', '{n['app']}')"
    principal = f"[reference({app_id}, '2023-12-01', 'full').identity.principalId]"
    definitions = "subscriptionResourceId('Microsoft.Authorization/roleDefinitions'"
    return [
        {
            "type": "Microsoft.Authorization/roleAssignments",
            "apiVersion": "2022-04-01",
            "scope": scope,
            "name": f"[guid(resourceId('Microsoft.Web/sites', '{n['app']}'), '{role}')]",
            "dependsOn": [
                f"[resourceId('Microsoft.Web/sites', '{n['app']}')]",
                f"[resourceId('Microsoft.Storage/storageAccounts', '{n['account']}')]",
            ],
            "properties": {
                "principalId": principal,
                "principalType": "ServicePrincipal",
                "roleDefinitionId": f"[{definitions}, '{role}')]",
            },
        }
        for role in ROLES.values()
    ]


def event_filter(stage: Stage) -> dict[str, Any]:
    """Only ``raw/*.eml`` blobs of the stage's container."""
    return {
        "includedEventTypes": ["Microsoft.Storage.BlobCreated"],
        "subjectEndsWith": ".eml",
        "subjectBeginsWith": f"/blobServices/default/containers/{stage.bucket}/blobs/raw/",
    }


def _events(stage: Stage, n: dict[str, str], location: str) -> list[dict[str, Any]]:
    account_id = f"[resourceId('Microsoft.Storage/storageAccounts', '{n['account']}')]"
    topic = {
        "type": "Microsoft.EventGrid/systemTopics",
        "apiVersion": "2022-06-15",
        "name": n["topic"],
        "location": location,
        "dependsOn": [account_id],
        "properties": {"source": account_id, "topicType": "Microsoft.Storage.StorageAccounts"},
    }
    if stage.extra.get("trigger", "queue") != "queue":
        return [
            topic
        ]  # the Event Grid trigger is subscribed after the code is deployed (it must exist first)
    queues = "Microsoft.Storage/storageAccounts/queueServices/queues"
    queue_id = f"[resourceId('{queues}', '{n['account']}', 'default', '{n['events']}')]"
    subscription = {
        "type": "Microsoft.EventGrid/systemTopics/eventSubscriptions",
        "apiVersion": "2022-06-15",
        "name": f"{n['topic']}/to-{n['events']}",
        "dependsOn": [f"[resourceId('Microsoft.EventGrid/systemTopics', '{n['topic']}')]", queue_id],
        "properties": {
            "destination": {
                "endpointType": "StorageQueue",
                "properties": {
                    "resourceId": account_id,
                    "queueName": n["events"],
                    "queueMessageTimeToLiveInSeconds": -1,
                },
            },
            "filter": event_filter(stage),
            "eventDeliverySchema": "EventGridSchema",
            "retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440},
        },
    }
    return [topic, subscription]


def template(stage: Stage, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The ARM template of the stage (deploy with ``az deployment group create``); ``extra``: more app
    settings."""
    n, location = names(stage), stage.region
    resources = _storage(n, stage, location) + _function_app(stage, n, location, extra or {}) + _roles(n)
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "resources": resources + _events(stage, n, location),
        "outputs": {"functionApp": {"type": "string", "value": n["app"]}},
    }


def commands(stage: Stage, root: Path) -> list[list[str]]:
    """What ``mailpipe-deploy`` runs: build the bundle and descriptors, then the generated deploy.sh."""
    return [
        [sys.executable, "-m", "deploy.build_bundle", stage.name],
        ["bash", f"build/{stage.name}/deploy.sh"],
    ]


def az(words: str, *args: str) -> list[str]:
    """``az WORDS... ARGS...`` as an argv list."""
    return ["az", *words.split(" "), *args]


def shell_commands(stage: Stage, secrets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every command of deploy.sh, in order (paths relative to build/STAGE)."""
    n, group = names(stage), stage.extra["resource_group"]
    rg = ("--resource-group", group)
    out: list[dict[str, Any]] = [
        {"run": az("group create", "--name", group, "--location", stage.region)},
        {"run": az("deployment group create", *rg, "--name", f"mailpipe-{stage.name}",
                   "--template-file", "azuredeploy.json")},
        {"run": az("functionapp deployment source config-zip", *rg, "--name", n["app"], "--src", "azure.zip",
                   "--build-remote", "true")},
    ]  # fmt: skip
    if secrets:  # the app's identity reads the Key Vault references (the vault may live in another group)
        principal = (f"$(az functionapp identity show --resource-group {group} --name {n['app']} "
                     "--query principalId --output tsv)")
        vault = f"$(az keyvault show --name {stage.extra['key_vault']} --query id --output tsv)"
        out.insert(2, {"run": az("role assignment create", "--assignee-object-id", principal,
                                 "--assignee-principal-type", "ServicePrincipal",
                                 "--role", "Key Vault Secrets User", "--scope", vault)})  # fmt: skip
    if stage.extra.get("trigger", "queue") == "eventgrid":  # the function must exist before it is subscribed
        f = event_filter(stage)
        function_id = (f"$(az functionapp function show --resource-group {group} --name {n['app']} "
                       "--function-name on_event_grid --query id --output tsv)")
        out.append({"run": az("eventgrid system-topic event-subscription create", *rg,
                              "--system-topic-name", n["topic"], "--name", "to-on-event-grid",
                              "--endpoint-type", "azurefunction", "--endpoint", function_id,
                              "--included-event-types", *f["includedEventTypes"],
                              "--subject-begins-with", f["subjectBeginsWith"],
                              "--subject-ends-with", f["subjectEndsWith"])})  # fmt: skip
    return out


def write(stage: Stage, base: Path, bundle: Path) -> list[dict[str, Any]]:
    """function_app.py + host.json into the bundle, azure.zip and azuredeploy.json beside it."""
    trigger = stage.extra.get("trigger", "queue")
    if trigger not in APPS:
        raise StageError(f"stage {stage.name!r}: azure.trigger is one of {', '.join(APPS)}")
    from deploy import stage_files

    shutil.copy2(ROOT / APPS[trigger], bundle / "function_app.py")
    (bundle / "host.json").write_text(json.dumps(host_json(stage), indent=2) + "\n")
    files, rules = stage_files.write(stage, bundle)  # stage/rules.json, stage/enrich.json in the bundle
    secrets = rules.secrets if rules else ()
    settings = {**files, **secret_refs(stage, secrets)}
    (base / "azuredeploy.json").write_text(json.dumps(template(stage, settings), indent=2) + "\n")
    from deploy.build_bundle import zip_dir

    zip_dir(bundle, base / "azure.zip")
    return shell_commands(stage, secrets)
