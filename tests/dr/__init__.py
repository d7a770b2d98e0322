"""Disaster-recovery drills: a point-in-time restore into a fresh instance (docs/operations.md)."""
