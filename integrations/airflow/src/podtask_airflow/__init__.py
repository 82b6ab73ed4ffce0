"""Airflow provider for podtask: run a task's pod as a PodTask (podtask.dev/v1alpha1)."""

__version__ = "0.1.0"
