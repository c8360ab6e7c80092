"""Sandbox for user Python code (PythonFuncNode): a zygote forks one isolated one-shot child per run."""

from activities.sandbox.pool import SandboxError, SandboxLimits, SandboxPool

__all__ = ["SandboxError", "SandboxLimits", "SandboxPool"]
