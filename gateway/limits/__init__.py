"""Shared state in Redis (rate-limit buckets come here); the only package that imports redis."""
