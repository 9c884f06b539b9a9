"""Fault-injection experiments on a live multi-process cluster (`ipchain faults`)."""
