"""Simulator tests: a package so their module names cannot collide with other folders'."""
