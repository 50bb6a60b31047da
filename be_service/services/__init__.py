"""Service functions behind the BE's routes: session first, keyword-only rest, never commit."""
