"""Tables of the WM service's database (its own MetaData, see ticketing_common.db)."""

from ticketing_common.db import make_model_base

WMModel = make_model_base("WMModel")
