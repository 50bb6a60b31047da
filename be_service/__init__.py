"""BE service."""
