"""Adapters for the two ticketing platforms: Cherwell (incidents, notes) and SFyC (work orders).

Each adapter makes one HTTP call per batch (plus one re-login on 401) and reports per-item
results; retrying is the pipeline's job, decided from the recorded attempts.
"""
