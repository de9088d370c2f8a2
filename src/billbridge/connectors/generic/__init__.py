"""The generic vendor: a time-tracking source and an ERP-like ledger target
with a deliberately plain wire format. It proves the engine end to end and is
the template a real vendor's folder follows (client, mapping, webhooks,
emulator)."""
