"""Helpers shared by the test tiers: fakes of the project's seams, Airflow runs, files, faults."""
