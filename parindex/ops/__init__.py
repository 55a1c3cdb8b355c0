"""Operator procedures: backup and restore (docs/reliability.md)."""
