"""End-to-end harness of the provider (``scripts/e2e_backfill.py`` is its command line).

One job per module: ``options`` (what a run is), ``services`` (processes it starts and stops),
``environment`` (Airflow configuration and AIRFLOW_HOME), ``metadata`` (queries of the metadata DB),
``dag_under_test`` (what each interval must hold), ``measure`` (checks and numbers of a phase), ``report``
(summary and table), ``run`` (the orchestration), ``executor`` (the simulated-hosts LocalExecutor).
"""
