"""Contract tests for the NetSuite emulator. There is no official NetSuite
Python client, so the emulator's answers are checked against the request and
response examples of NetSuite's REST web services documentation (the bodies
below, section by section): the same statuses, headers, fields and JSON types.
And a TBA signature computed independently, by ``requests-oauthlib``, is
accepted (and a wrong one refused)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests_oauthlib import OAuth1

from billbridge.connectors.netsuite.emulator import NetSuiteEmulator

ACCOUNT = "1234567_SB1"

# "Sending an Asynchronous Request": the job status of a request in progress.
DOCUMENTED_JOB = {"links": [{"rel": "self", "href": "https://demo123.suitetalk.api.netsuite.com/"
                                                    "services/rest/async/v1/job/1"}],
                  "completed": False, "id": "1", "progress": "pending",
                  "task": {"links": [{"rel": "self", "href": "https://demo123.suitetalk.api."
                                      "netsuite.com/services/rest/async/v1/job/1/task"}]}}
# "Polling for the Status of a Completed Asynchronous Request".
DOCUMENTED_TASK = {"links": [{"rel": "related", "href": "…/async/v1/job/1/task/1/result"},
                             {"rel": "self", "href": "…/async/v1/job/1/task/1"}],
                   "completed": True, "id": "1", "progress": "succeeded"}
# A collection page ("Collection Paging"; SuiteQL answers the same shape).
DOCUMENTED_COLLECTION = {"links": [{"rel": "self", "href": "…"}], "count": 1, "hasMore": False,
                         "items": [{"links": []}], "offset": 0, "totalResults": 1}
# "Sending an Asynchronous Request Using an Idempotency Key": the repeat's answer.
DOCUMENTED_IDEMPOTENCY_ERROR = {
    "type": "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.10",
    "title": "Conflict", "status": 400,
    "o:errorDetails": [{"detail": "A request with the same idempotency key is already "
                                  "submitted.", "o:errorCode": "IDEMPOTENCY_ERROR"}]}
# "Error Handling in REST Web Services": invalid login information.
DOCUMENTED_INVALID_LOGIN = {
    "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.2",
    "title": "Unauthorized", "status": 401,
    "o:errorDetails": [{"detail": "Invalid login attempt. For more details, see the Login Audit "
                                  "Trail in the NetSuite UI at Setup > Users/Roles > User "
                                  "Management > View Login Audit Trail.",
                        "o:errorCode": "INVALID_LOGIN"}]}
# "GovernanceLimits Operation".
DOCUMENTED_GOVERNANCE = {"accountConcurrencyLimit": 15, "accountUnallocatedConcurrencyLimit": 10,
                         "integrationLimitType": "accountLimit"}


def assert_same_shape(documented: Any, actual: Any, where: str = "body") -> None:
    """Every documented field is there with the documented JSON type."""
    assert type(actual) is type(documented), f"{where}: {type(actual).__name__} where the " \
        f"documentation has {type(documented).__name__}"
    if isinstance(documented, dict):
        for key, value in documented.items():
            assert key in actual, f"{where}: no {key!r}"
            assert_same_shape(value, actual[key], f"{where}.{key}")
    elif isinstance(documented, list) and documented:
        assert actual, f"{where}: empty where the documentation has items"
        assert_same_shape(documented[0], actual[0], f"{where}[0]")


@pytest.fixture
def netsuite() -> Iterator[NetSuiteEmulator]:
    emulator = NetSuiteEmulator(account=ACCOUNT, job_reads_to_complete=2)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.trust_env = False  # this machine's proxy and CA variables are not for 127.0.0.1
        http.auth = OAuth1("ck", "cs", "tk", "ts", signature_method="HMAC-SHA256",
                           realm=ACCOUNT)
        yield http


def test_a_signature_computed_by_requests_oauthlib_is_accepted_and_a_wrong_one_refused(
        netsuite: NetSuiteEmulator, session: requests.Session) -> None:
    url = f"{netsuite.url}/services/rest/system/v1/governanceLimits"
    answer = session.get(url)
    assert answer.status_code == 200
    assert_same_shape(DOCUMENTED_GOVERNANCE, answer.json())
    # A query string and a JSON body: the query is signed, the body is not.
    page = session.post(f"{netsuite.url}/services/rest/query/v1/suiteql",
                        params={"limit": 5, "offset": 0}, json={"q": "SELECT id FROM customer"},
                        headers={"Prefer": "transient"})
    assert page.status_code == 200
    forged = requests.Session()
    forged.trust_env = False
    forged.auth = OAuth1("ck", "wrong", "tk", "ts", signature_method="HMAC-SHA256",
                         realm=ACCOUNT)
    refused = forged.get(url)
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/vnd.oracle.resource+json")
    assert refused.json() == DOCUMENTED_INVALID_LOGIN


def test_async_submit_job_tasks_and_idempotent_repeat_answer_as_documented(
        netsuite: NetSuiteEmulator, session: requests.Session) -> None:
    base = f"{netsuite.url}/services/rest/record/v1"
    customer = session.put(f"{base}/customer/eid:CID002",
                           json={"companyName": "Glenrock", "subsidiary": {"id": "1"}})
    assert customer.status_code == 204 and customer.headers["location"].endswith(
        "/record/v1/customer/101")
    headers = {"Prefer": "respond-async", "X-NetSuite-Idempotency-Key":
               "cac827ea-3543-4cda-add2-bae634326c27",
               "Content-Type": "application/vnd.oracle.resource+json; type=collection"}
    body = {"items": [{"externalId": "JOB-1", "companyName": "Project 1",
                       "parent": {"id": "101"}},
                      {"externalId": "JOB-2", "companyName": "Project 2",
                       "parent": {"id": "101"}}]}
    submitted = session.put(f"{base}/job", json=body, headers=headers)
    assert submitted.status_code == 202 and not submitted.content
    assert submitted.headers["preference-applied"] == "respond-async"
    job_url = submitted.headers["location"]
    assert job_url.endswith("/services/rest/async/v1/job/1")
    pending = session.get(job_url).json()
    assert_same_shape(DOCUMENTED_JOB, pending)
    assert pending["completed"] is False and pending["progress"] == "pending"
    done = session.get(job_url).json()
    assert done["completed"] is True and done["progress"] == "succeeded"
    tasks = session.get(done["task"]["links"][0]["href"]).json()
    assert_same_shape(DOCUMENTED_COLLECTION, tasks)
    assert tasks["count"] == 2
    task = session.get(tasks["items"][1]["links"][0]["href"]).json()
    assert_same_shape(DOCUMENTED_TASK, task)
    result = session.get(task["links"][0]["href"]).json()
    assert result["links"][0]["href"].endswith("/record/v1/job/103")
    repeat = session.put(f"{base}/job", json=body, headers=headers)
    assert repeat.status_code == 400 and repeat.headers["location"] == job_url
    assert_same_shape(DOCUMENTED_IDEMPOTENCY_ERROR, repeat.json())
    assert repeat.json()["o:errorDetails"][0]["o:errorCode"] == "IDEMPOTENCY_ERROR"
    assert len(netsuite.all("job")) == 2


def test_suiteql_pages_answer_as_documented(netsuite: NetSuiteEmulator,
                                            session: requests.Session) -> None:
    for n in range(3):
        session.put(f"{netsuite.url}/services/rest/record/v1/customer/eid:C{n}",
                    json={"companyName": f"Customer {n}", "subsidiary": {"id": "1"}})
    url = f"{netsuite.url}/services/rest/query/v1/suiteql"
    page = session.post(url, params={"limit": 2, "offset": 0}, headers={"Prefer": "transient"},
                        json={"q": "SELECT id, companyname, lastmodifieddate FROM customer "
                                   "ORDER BY id"}).json()
    assert_same_shape(DOCUMENTED_COLLECTION, page)
    assert (page["count"], page["hasMore"], page["totalResults"]) == (2, True, 3)
    assert page["links"][0]["rel"] == "next" and "offset=2" in page["links"][0]["href"]
    first = page["items"][0]
    assert first["companyname"] == "Customer 0" and isinstance(first["id"], str)
    assert first["lastmodifieddate"].count("/") == 2  # the user's date format, M/D/YYYY
    no_prefer = session.post(url, json={"q": "SELECT id FROM customer"})
    assert no_prefer.status_code == 400
    assert no_prefer.json()["o:errorDetails"][0]["o:errorHeader"] == "Prefer"
