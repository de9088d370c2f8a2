"""The flows the hub runs, registered by event type."""

from billbridge.flows import activation, invoicing, milestones, time_billing
from billbridge.flows.base import FlowRegistry


def default_flows() -> FlowRegistry:
    registry = FlowRegistry()
    activation.register(registry)
    time_billing.register(registry)
    invoicing.register(registry)
    milestones.register(registry)
    return registry
