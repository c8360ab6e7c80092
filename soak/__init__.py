"""The chaos soak (`make soak`): a multi-process deployment under mixed load and process faults, then
invariant checks. A test tool: nothing in the service imports it."""
