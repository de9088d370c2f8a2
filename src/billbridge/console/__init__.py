"""The operations console: server-rendered pages for finance and IT, behind
the same tokens and roles as the API."""
