"""Triggers of the Schneider provider."""
