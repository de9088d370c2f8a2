"""billbridge: an integration hub joining a services firm's CRM, time tools and ERP."""

__version__ = "0.1.0"
