"""Apache Airflow provider for Schneider Electric distributor (partner) APIs.

Kept import-light on purpose: DAG files import operators from here on every parse loop.
"""

__version__ = "0.1.0"
