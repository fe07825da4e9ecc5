"""The dashboard: every model's live precision and recall, drift and traffic, on one page."""

from mlprod.dashboard._app import create_dashboard, mount_dashboard

__all__ = ["create_dashboard", "mount_dashboard"]
