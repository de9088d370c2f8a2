"""Tempo worklogs ↔ canonical events.

A worklog's author (an Atlassian ``accountId``) becomes a canonical worker
through the connection's ``workers`` map; its Tempo account (the work
attribute ``_Account_``, the billing account the time is logged to) becomes
the project, through ``accounts`` (account key → project code; unmapped keys
are the code itself); its Jira issue becomes the task through ``tasks``
(issue id or key → task id; else the key, else the id: v4 names the issue by
id only, so the key is read from Jira when a Jira connection is given).
Approval is not on the worklog: it is the status of the author's timesheet
for the period that holds the worklog's date (``status.key``; ``APPROVED``
is approved, ``REJECTED`` rejected, any other submitted; both sets are
settings since Tempo's list is unverified).

Hours are seconds / 3600 as Decimal, rounded half-up to 0.01 once per
worklog: 5,400 s is 1.50 h, 1,000 s 0.28 h. A worklog with billable seconds
is billable at those; one with none is a non-billable line of its spent time.

Entries are keyed by their Jira worklog id (``te_tempo_<jiraWorklogId>``):
Jira's webhooks and a deletion name only that id, and every Tempo Cloud
worklog has one (D63). Event ids carry the worklog's ``updatedAt`` and the
approval's status and ``updatedAt``, so one state read twice (by poll and by
webhook) is one inbox event, and an approval taken back and given again is a
new one. What cannot be mapped becomes ``Malformed``, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import ValidationError

from billbridge.connectors.base import Malformed, UnmappedPerson
from billbridge.connectors.fields import blank, explain, instant, option_mapping
from billbridge.domain.records import TimeEntry

SOURCE = "tempo"
ACCOUNT_ATTRIBUTE = "_Account_"
HOUR = Decimal(3600)
CENT = Decimal("0.01")


def _statuses(value: Any, default: frozenset[str]) -> frozenset[str]:
    if value in (None, ""):
        return default
    items = value.split(",") if isinstance(value, str) else list(value)
    return frozenset(str(i).strip().upper() for i in items if str(i).strip())


@dataclass(frozen=True)
class MappingConfig:
    source: str = SOURCE
    workers: Mapping[str, str] = field(default_factory=dict)
    """Atlassian accountId → canonical worker id."""
    accounts: Mapping[str, str] = field(default_factory=dict)
    """Tempo account key → project code; a key not here is the code itself."""
    tasks: Mapping[str, str] = field(default_factory=dict)
    """Jira issue id or key → canonical task id; else the key, else the id."""
    account_attribute: str = ACCOUNT_ATTRIBUTE
    approved: frozenset[str] = frozenset({"APPROVED"})
    rejected: frozenset[str] = frozenset({"REJECTED"})

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, source: str = SOURCE) -> MappingConfig:
        return cls(source=source, workers=option_mapping(options.get("workers"), "workers"),
                   accounts=option_mapping(options.get("accounts"), "accounts"),
                   tasks=option_mapping(options.get("tasks"), "tasks"),
                   account_attribute=str(options.get("account_attribute")
                                         or ACCOUNT_ATTRIBUTE),
                   approved=_statuses(options.get("approved_statuses"),
                                      frozenset({"APPROVED"})),
                   rejected=_statuses(options.get("rejected_statuses"),
                                      frozenset({"REJECTED"})))


def canonical_id(jira_worklog_id: Any, source: str = SOURCE) -> str:
    return f"te_{source}_{jira_worklog_id}"


stamp = instant


def hours(seconds: int) -> Decimal:
    """Seconds as hours, exactly, rounded half-up to the hundredth once."""
    return (Decimal(seconds) / HOUR).quantize(CENT, rounding=ROUND_HALF_UP)


def _ref(record: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = record.get(name)
    return value if isinstance(value, Mapping) else {}


def author_of(worklog: Mapping[str, Any]) -> str | None:
    account = _ref(worklog, "author").get("accountId")
    return None if blank(account) else str(account)


def account_key(worklog: Mapping[str, Any], attribute: str = ACCOUNT_ATTRIBUTE) -> str | None:
    """The worklog's Tempo account: its ``_Account_`` work attribute."""
    values = _ref(worklog, "attributes").get("values")
    for item in values if isinstance(values, list) else []:
        if isinstance(item, Mapping) and item.get("key") == attribute \
                and not blank(item.get("value")):
            return str(item["value"]).strip()
    return None


def project_of(worklog: Mapping[str, Any], config: MappingConfig) -> str | None:
    key = account_key(worklog, config.account_attribute)
    return None if key is None else config.accounts.get(key, key)


def period(approval: Mapping[str, Any]) -> tuple[str, str] | None:
    """(first day, last day) of the timesheet period an approval is for."""
    found = _ref(approval, "period")
    start, end = found.get("from"), found.get("to")
    return (str(start), str(end)) if start and end else None


def unmapped_issue(worklog: Mapping[str, Any], config: MappingConfig) -> str | None:
    """The worklog's issue id when ``tasks`` does not name it by id: its key is
    then worth reading from Jira."""
    issue = _ref(worklog, "issue").get("id")
    return None if issue is None or str(issue) in config.tasks else str(issue)


def approval_state(approval: Mapping[str, Any] | None) -> tuple[str, str]:
    """(status key, when it was set) of a timesheet approval ("OPEN", "" when none)."""
    status = _ref(approval or {}, "status")
    return str(status.get("key") or "OPEN").upper(), str(status.get("updatedAt") or "")


def entry_status(approval: Mapping[str, Any] | None, config: MappingConfig) -> str:
    key, _when = approval_state(approval)
    if key in config.approved:
        return "approved"
    return "rejected" if key in config.rejected else "submitted"


def event_id(worklog: Mapping[str, Any], approval: Mapping[str, Any] | None) -> str:
    key, when = approval_state(approval)
    return f"time_entry:{worklog.get('jiraWorklogId')}:{worklog.get('updatedAt')}:{key}:{when}"


class _Unmappable(Exception):
    """Why one worklog cannot become an event; turned into ``Malformed``."""


def _seconds(worklog: Mapping[str, Any], name: str) -> int | None:
    value = worklog.get(name)
    if value is None and name == "billableSeconds":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Unmappable(f"{name} is {value!r}, not a whole number of seconds")
    return value


def _record(worklog: Mapping[str, Any], approval: Mapping[str, Any] | None,
            config: MappingConfig, issue_key: str | None) -> dict[str, Any]:
    author = author_of(worklog)
    worker = config.workers.get(author or "")
    if worker is None:
        raise _Unmappable(f"author {author} is not mapped to a worker; add \"{author}\": "
                          f"\"<worker id>\" under workers in the {config.source} connection")
    project = project_of(worklog, config)
    if project is None:
        raise _Unmappable(f"it has no Tempo account ({config.account_attribute}): log it to "
                          "the billing account of its project")
    spent, billable = _seconds(worklog, "timeSpentSeconds"), _seconds(worklog, "billableSeconds")
    issue = str(_ref(worklog, "issue").get("id"))
    task = config.tasks.get(issue) or (config.tasks.get(issue_key) or issue_key
                                       if issue_key else issue)
    return {"id": canonical_id(worklog.get("jiraWorklogId"), config.source), "worker": worker,
            "project": project, "task": task,
            "work_date": worklog.get("startDate"),
            "hours": str(hours(billable if billable else spent or 0)),
            "billable": billable is None or billable > 0,
            "notes": str(worklog.get("description") or ""),
            "status": entry_status(approval, config)}


def _unmapped(worklog: Mapping[str, Any], approval: Mapping[str, Any] | None,
              config: MappingConfig) -> UnmappedPerson:
    """An author the connection maps to no worker: their hours, for leakage (D72)."""
    try:
        spent = _seconds(worklog, "timeSpentSeconds")
        billable = _seconds(worklog, "billableSeconds")
        counted: str | None = str(hours(billable if billable else spent or 0))
    except _Unmappable:
        counted = None
    day = worklog.get("startDate")
    return UnmappedPerson(
        connection=config.source, user=str(author_of(worklog)), name=None,
        entry=canonical_id(worklog.get("jiraWorklogId"), config.source), hours=counted,
        approved=entry_status(approval, config) == "approved",
        project=project_of(worklog, config), work_date=str(day) if day else None)


def worklog_event(worklog: Mapping[str, Any], approval: Mapping[str, Any] | None,
                  config: MappingConfig, issue_key: str | None = None
                  ) -> dict[str, Any] | Malformed:
    """``time_entry.upserted`` for one worklog under its timesheet's approval
    (``issue_key``: its Jira issue's key, where it was read). An author not
    mapped is also said as ``UnmappedPerson``, so the hours count as leakage."""
    event = _worklog_event(worklog, approval, config, issue_key)
    if isinstance(event, Malformed) and author_of(worklog) not in config.workers:
        return replace(event, unmapped=_unmapped(worklog, approval, config))
    return event


def _worklog_event(worklog: Mapping[str, Any], approval: Mapping[str, Any] | None,
                   config: MappingConfig, issue_key: str | None
                   ) -> dict[str, Any] | Malformed:
    eid = event_id(worklog, approval)
    updated = stamp(worklog.get("updatedAt"))
    label = f"Tempo worklog {worklog.get('tempoWorklogId')}"
    try:
        if not isinstance(worklog.get("jiraWorklogId"), int):
            raise _Unmappable(f"jiraWorklogId is {worklog.get('jiraWorklogId')!r}, not an id")
        if updated is None:
            raise _Unmappable(f"updatedAt is {worklog.get('updatedAt')!r}, not a time")
        data = _record(worklog, approval, config, issue_key)
        approved_at = stamp(approval_state(approval)[1])
        data["source_version"] = int(max(updated, approved_at or updated).timestamp())
        TimeEntry.model_validate(data)
    except _Unmappable as exc:
        return Malformed(dict(worklog), f"{label}: {exc}", f"{eid}:malformed")
    except ValidationError as exc:
        return Malformed(dict(worklog), f"{label}: {explain(exc)}", f"{eid}:malformed")
    return {"type": "time_entry.upserted", "source": config.source, "id": eid,
            "at": updated.isoformat(), "data": data}


def deleted_event(jira_worklog_id: Any, project: str | None, *, at: datetime,
                  config: MappingConfig) -> dict[str, Any]:
    """``time_entry.deleted``: one per worklog, ever (Jira never reuses an id)."""
    data: dict[str, Any] = {"id": canonical_id(jira_worklog_id, config.source)}
    if project:
        data["project"] = project
    return {"type": "time_entry.deleted", "source": config.source,
            "id": f"time_entry:{jira_worklog_id}:deleted", "at": at.isoformat(), "data": data}
