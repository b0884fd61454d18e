"""Hooks of the Schneider provider."""
