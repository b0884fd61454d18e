"""The cluster-wide cap: the deployment's pool as the operators' default, and the warning without one."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_schneider.operators import SchneiderOrderStatusOperator
from airflow_provider_schneider.operators.pool import runs_on_several_hosts, warn_without_pool


@pytest.fixture
def named_pool(monkeypatch):
    monkeypatch.setenv("AIRFLOW__SCHNEIDER__POOL", "schneider")


def test_without_a_named_pool_the_operators_stay_in_airflow_s_default_pool(monkeypatch):
    monkeypatch.delenv("AIRFLOW__SCHNEIDER__POOL", raising=False)
    assert SchneiderOrderStatusOperator(task_id="t", country="FR").pool == "default_pool"


def test_the_deployment_s_pool_is_the_default_and_a_dag_author_s_choice_wins(named_pool):
    assert SchneiderOrderStatusOperator(task_id="a", country="FR").pool == "schneider"
    assert SchneiderOrderStatusOperator(task_id="b", country="FR", pool="mine").pool == "mine"
    chosen = SchneiderOrderStatusOperator(task_id="c", country="FR", default_args={"pool": "theirs"})
    assert chosen.pool == "theirs"


def test_a_mapped_operator_is_scheduled_in_the_deployment_s_pool(named_pool):
    from airflow.sdk import DAG

    with DAG("pool_mapped", schedule=None):
        mapped = SchneiderOrderStatusOperator.partial(task_id="m").expand(country=["FR", "DE"])
    assert mapped.pool == "schneider"


@pytest.mark.parametrize(
    ("executor", "several"),
    [
        ("LocalExecutor", False),
        ("CeleryExecutor", True),
        ("LocalExecutor,CeleryExecutor", True),
        ("airflow.providers.celery.executors.celery_executor.CeleryExecutor", True),
        ("KubernetesExecutor", True),
        ("SequentialExecutor", False),
    ],
)
def test_multi_host_executors_are_recognised(monkeypatch, executor, several):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    assert runs_on_several_hosts() is several


class _Task:
    def __init__(self, pool: str):
        self.pool = pool
        self.log = logging.getLogger("tests.pool")


def test_a_task_in_the_default_pool_of_a_multi_host_deployment_says_what_to_do(monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    with caplog.at_level(logging.WARNING, logger="tests.pool"):
        warn_without_pool(_Task("default_pool"))
        warn_without_pool(_Task("schneider"))
    assert len(caplog.records) == 1
    assert "AIRFLOW__SCHNEIDER__POOL=schneider" in caplog.text and "client_max_in_flight" in caplog.text
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    caplog.clear()
    warn_without_pool(_Task("default_pool"))
    assert not caplog.records
