"""Placeholder until this contract family lands (issue: the alliance contracts)."""

OPS: dict = {}
