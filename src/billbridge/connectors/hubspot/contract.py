"""The fields the HubSpot source reads, as a contract (connectors.contracts):
deals and companies as CRM v3 objects (``id``, ``properties``, ``createdAt``,
``updatedAt``, ``archived``), each requested property a string or null (HubSpot
answers property values as strings). Property names follow the connection's
field map; the API version is CRM ``v3``."""

from __future__ import annotations

from billbridge.connectors.contracts import Contract, FieldSpec, FieldType, optional, required
from billbridge.connectors.hubspot.mapping import MappingConfig

S, B = FieldType.STRING, FieldType.BOOLEAN
ENVELOPE = {"id": required(S), "createdAt": optional(S), "updatedAt": optional(S),
            "archived": optional(B)}
# HubSpot answers these with every object, asked for or not.
ALWAYS = ("createdate", "hs_lastmodifieddate", "hs_object_id")
REQUIRED = frozenset({"hs_lastmodifieddate", "dealstage"})


def _properties(names: list[str]) -> dict[str, FieldSpec]:
    return {f"properties.{n}": FieldSpec(S, n in REQUIRED) for n in [*ALWAYS, *names]}


def contract(config: MappingConfig | None = None) -> Contract:
    config = config or MappingConfig()
    return Contract("hubspot", "v3", {
        "deal": {**ENVELOPE, **_properties(config.deal_properties())},
        "company": {**ENVELOPE, **_properties(config.company_properties())},
    })
