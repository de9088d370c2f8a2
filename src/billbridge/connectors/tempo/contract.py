"""The fields the Tempo source reads, as a contract (connectors.contracts):
worklogs (``GET /4/worklogs``, ``/worklogs/search``, ``/worklogs/jira/{id}``),
their references (issue, author, attributes) read whole, and the timesheet
approval a worklog's period stands under. The webhook door reads the worklog
again by its Jira id, so deliveries are checked as polls are. Tempo's REST API
is ``4`` (the path ``/4``)."""

from __future__ import annotations

from billbridge.connectors.contracts import declare

CONTRACT = declare("tempo", "4", """
worklog approval
  string  self
  number  timeSpentSeconds
worklog
  string  startDate! startTime description createdAt updatedAt!
  number  tempoWorklogId! jiraWorklogId billableSeconds
  object  issue! author! attributes
approval
  number  requiredSeconds
  object  user period! status! worklogs actions
""")
