"""Operators of the Schneider provider."""
