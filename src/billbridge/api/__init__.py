"""The HTTP surface of the hub."""
