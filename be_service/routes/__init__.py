"""Thin HTTP routes of the BE: parse, call a service function, return."""
