"""The demo story and its configuration."""
