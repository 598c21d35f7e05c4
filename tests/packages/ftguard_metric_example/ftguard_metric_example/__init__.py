"""Example user metrics for ftguard's tests (see scoring.py)."""
