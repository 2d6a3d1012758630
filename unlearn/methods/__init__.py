"""Unlearning methods: one file and one `conf/method/<name>.yaml` each, all behind `base.Method`."""
from unlearn.methods.base import LossMethod, Method, Task

__all__ = ["LossMethod", "Method", "Task"]
