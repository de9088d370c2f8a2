"""Tempo (Jira time tracking, REST API v4): approved worklogs in, by polling
(worklog search by ``updatedFrom``, timesheet approvals, deletions by id sets)
and by Jira's signed worklog webhooks, each worklog read again from Tempo.
Tempo holds no field for other systems' ids, so nothing is written back
(D63). See docs/connectors/tempo.md.

Connection: ``base_url`` (``https://api.tempo.io/4``); credentials ``token``
(an API integration token or OAuth access token), ``webhook_secret`` (the
Jira webhook's secret), ``jira_email`` and ``jira_api_token`` (for issue
keys); options ``jira_url``, ``jira_requests_per_second``, ``workers``, ``accounts``, ``tasks``
(mappings, JSON when they come from the environment), ``account_attribute``,
``approved_statuses``, ``rejected_statuses``, ``requests_per_second``,
``order_by``, ``limit``, ``lookback_seconds``, ``approval_window_days``,
``deletion_window_days``, ``reconcile_every``, ``webhook_tolerance_seconds``.
"""

from __future__ import annotations

from billbridge.connectors.base import Connection, ConnectorSpec, Source, WebhookReceiver
from billbridge.connectors.clients import ClientCache
from billbridge.connectors.tempo.client import (
    DEFAULT_BASE_URL,
    DEFAULT_PACE,
    ORDER_BY,
    JiraIssues,
    TempoClient,
    tempo_rate_limit,
)
from billbridge.connectors.tempo.mapping import MappingConfig

_CLIENTS: ClientCache[TempoClient] = ClientCache()


def client_for(connection: Connection) -> TempoClient:
    """One client per Tempo instance and token, shared by the source and the
    webhook door, so that together they keep within 5 requests a second."""
    creds, options = connection.credentials, connection.options
    token = creds.get("token") or creds.get("access_token", "")
    url = connection.base_url or DEFAULT_BASE_URL
    return _CLIENTS.get(
        (connection.name, url, token),
        lambda: TempoClient(url, token=token, rate_limit=tempo_rate_limit(
            float(options.get("requests_per_second") or DEFAULT_PACE)),
            order_by=str(options.get("order_by", ORDER_BY)), jira=_jira(connection)))


def _jira(connection: Connection) -> JiraIssues | None:
    """Jira, for issue keys, when the connection names it (option ``jira_url``,
    credentials ``jira_email`` and ``jira_api_token``)."""
    url = connection.options.get("jira_url")
    if not url:
        return None
    return JiraIssues(str(url), email=connection.credentials.get("jira_email", ""),
                      api_token=connection.credentials.get("jira_api_token", ""),
                      rate_limit=tempo_rate_limit(
                          float(connection.options.get("jira_requests_per_second") or 10)))


def _config(connection: Connection) -> MappingConfig:
    return MappingConfig.from_options(connection.options, source=connection.name)


def _source(connection: Connection) -> Source:
    from billbridge.connectors.tempo.source import TempoSource

    options = connection.options
    return TempoSource(client_for(connection), name=connection.name, config=_config(connection),
                       limit=int(options.get("limit", 1000)),
                       lookback_seconds=int(options.get("lookback_seconds", 1)),
                       approval_window_days=int(options.get("approval_window_days", 62)),
                       deletion_window_days=int(options.get("deletion_window_days", 35)),
                       reconcile_every=float(options.get("reconcile_every", 3600)))


def _webhooks(connection: Connection) -> WebhookReceiver:
    from billbridge.connectors.tempo.webhooks import TempoWebhooks

    return TempoWebhooks(connection.credentials.get("webhook_secret", ""),
                         client_for(connection), config=_config(connection),
                         tolerance=float(connection.options.get("webhook_tolerance_seconds",
                                                                300)))


CONNECTOR = ConnectorSpec("tempo", source=_source, webhooks=_webhooks)
