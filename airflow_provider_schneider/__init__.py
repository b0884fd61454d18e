"""Apache Airflow provider for Schneider Electric distributor (partner) APIs.

Kept import-light on purpose: DAG files import operators from here on every parse loop.
"""

from typing import Any

__version__ = "0.1.0"


def lazy_attributes(package: str, where: dict[str, str]) -> Any:
    """A package's ``__getattr__`` that imports ``where[name]`` (a submodule) only when ``name`` is first used:
    the Airflow faces (operators, hooks, sensors, triggers) name their public classes without importing them."""
    from importlib import import_module

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{where[name]}"), name)

    return __getattr__
