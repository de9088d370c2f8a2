"""The flows the hub runs, registered by event type."""

from billbridge.flows import time_billing
from billbridge.flows.base import FlowRegistry


def default_flows() -> FlowRegistry:
    registry = FlowRegistry()
    time_billing.register(registry)
    return registry
