"""Outgoing webhooks: registration (service.py), the SSRF guard (guard.py), signing (signing.py) and the
background delivery (delivery.py)."""
