"""The delivery pipeline: claim → the step list (check → note | create → work order → link).

`worker.py` is the loop, `store.py` the SQL (claim, record), `steps.py` what a platform step
is, `sender.py` runs one claimed batch down the step list, `policy.py` decides retry vs Error.
"""
