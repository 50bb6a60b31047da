"""The delivery pipeline: claim → check → note | create → work order → link.

`worker.py` is the loop, `store.py` the SQL (claim, record), `sender.py` sends one claimed
batch through every step, `retry.py` decides retry vs Error from the recorded attempts.
"""
