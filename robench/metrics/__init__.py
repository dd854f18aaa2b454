"""Metrics: accumulators of raw counts plus pure functions for the aggregates."""
