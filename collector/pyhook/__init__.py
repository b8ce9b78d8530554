"""Runs inside a crashing Python program, as its user: the unhandled-exception hook."""
