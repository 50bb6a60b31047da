"""Faithful in-memory emulators of the Cherwell and SFyC platforms, with fault injection."""
