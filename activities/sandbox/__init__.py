"""Sandbox for user Python code (PythonFuncNode): a warm pool of isolated one-shot children."""

from activities.sandbox.pool import SandboxError, SandboxLimits, SandboxPool

__all__ = ["SandboxError", "SandboxLimits", "SandboxPool"]
