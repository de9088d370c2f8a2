"""``$batch`` bodies as the Finance emulator reads and writes them:
``multipart/mixed`` parts, each an ``application/http`` request or a change
set (a nested ``multipart/mixed`` whose requests apply all or none)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

_BOUNDARY = re.compile(r'boundary="?([^";,\s]+)"?', re.IGNORECASE)
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
            404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


@dataclass
class InnerRequest:
    method: str
    url: str
    body: bytes
    content_id: str | None = None


@dataclass
class Part:
    """A top-level part: one request, or a change set of several."""

    requests: list[InnerRequest]
    changeset: bool


@dataclass
class InnerResponse:
    status: int
    body: bytes = b""
    content_id: str | None = None


def boundary_of(content_type: str) -> str | None:
    found = _BOUNDARY.search(content_type or "")
    return found.group(1) if found else None


def _split(body: str, boundary: str) -> list[str]:
    chunks = re.split(rf"(?:^|\r?\n)--{re.escape(boundary)}(?:--)?[ \t]*(?=\r?\n|$)", body)
    return [c for c in chunks[1:] if c.strip() and c.strip() != "--"]


def _headers_and_body(text: str) -> tuple[dict[str, str], str]:
    text = text.replace("\r\n", "\n").lstrip("\n")
    head, _, rest = text.partition("\n\n")
    headers = {}
    for line in head.split("\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def parse(body: bytes, content_type: str) -> list[Part]:
    """The parts of a ``$batch`` request body; ``ValueError`` when it is not one."""
    boundary = boundary_of(content_type)
    if not boundary:
        raise ValueError("Content-Type must be multipart/mixed with a boundary")
    parts: list[Part] = []
    for chunk in _split(body.decode("utf-8"), boundary):
        part_headers, inner = _headers_and_body(chunk)
        kind = part_headers.get("content-type", "")
        if kind.lower().startswith("multipart/mixed"):
            inner_boundary = boundary_of(kind)
            if not inner_boundary:
                raise ValueError("a change set has no boundary")
            requests = []
            for sub in _split(inner, inner_boundary):
                sub_headers, sub_inner = _headers_and_body(sub)
                if (sub_headers.get("content-type") or "").lower().startswith("multipart"):
                    raise ValueError("change sets cannot be nested")
                requests.append(_http(sub_headers, sub_inner))
            parts.append(Part(requests, changeset=True))
        else:
            parts.append(Part([_http(part_headers, inner)], changeset=False))
    return parts


def _http(part_headers: dict[str, str], text: str) -> InnerRequest:
    lines = text.lstrip("\n").split("\n")
    method, url, *_ = lines[0].split(" ")
    index = 1
    while index < len(lines) and lines[index].strip():
        index += 1
    body = "\n".join(lines[index + 1:]).strip()
    return InnerRequest(method.upper(), url, body.encode(), part_headers.get("content-id"))


def _response_text(response: InnerResponse) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if response.content_id:
        lines.append(f"Content-ID: {response.content_id}")
    lines += ["", f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}"]
    if response.body:
        lines.append("Content-Type: application/json; odata.metadata=minimal")
    lines += ["", response.body.decode() if response.body else ""]
    return "\r\n".join(lines)


def render(items: list[InnerResponse | list[InnerResponse]]) -> tuple[str, bytes]:
    """The ``$batch`` answer (content type, body): a list is a change set that
    applied, an ``InnerResponse`` a lone request or a change set that failed."""
    boundary = f"batchresponse_{uuid.uuid4()}"
    out: list[str] = []
    for item in items:
        if isinstance(item, list):
            inner = f"changesetresponse_{uuid.uuid4()}"
            nested = "".join(f"--{inner}\r\n{_response_text(r)}\r\n" for r in item)
            out.append(f"--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}"
                       f"\r\n\r\n{nested}--{inner}--\r\n")
        else:
            out.append(f"--{boundary}\r\n{_response_text(item)}\r\n")
    return (f"multipart/mixed; boundary={boundary}",
            ("".join(out) + f"--{boundary}--\r\n").encode())
