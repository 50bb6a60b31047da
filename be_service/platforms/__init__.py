"""The platforms: one module each (adapter and steps), and the step list that orders them.

Each adapter makes one HTTP call per batch (plus one re-login on 401) and reports per-item
results; retrying is the pipeline's job, decided from the recorded attempts.
"""
