"""Tables of the distribution part of the WM (backend registry); same MetaData as the WM."""

from wm_service.models import WMModel

__all__ = ["WMModel"]
