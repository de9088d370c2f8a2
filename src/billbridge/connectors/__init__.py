"""System APIs: one package per vendor, each speaking its vendor's wire format."""
