"""Sensors of the Schneider provider."""
