"""The fields the generic time source reads, as a contract
(connectors.contracts): its plain time entry, polled or delivered by webhook
(a delivery carries the entry itself). Hours are a decimal string, as money
and time are everywhere in billbridge; the version is the path's ``v1``."""

from __future__ import annotations

from billbridge.connectors.contracts import declare

CONTRACT = declare("generic", "v1", """
time_entry
  string  id! worker! project! work_date! hours! updated_at! task notes status
  number  version!
  boolean billable
""")
