"""WM service."""
