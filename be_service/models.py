"""Tables of the BE service's database (its own MetaData, see ticketing_common.db)."""

from ticketing_common.db import make_model_base

BEModel = make_model_base("BEModel")
