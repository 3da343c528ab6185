"""The admin API: tenants, accounts, routing, API keys and the audit trail over HTTP."""

from admin_api.app import create_app

__all__ = ["create_app"]
