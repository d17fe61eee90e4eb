"""Shared state in Redis: the client, the key layout, the versioned Lua scripts, the pipelined connection
admissions travel on, and the replica heartbeat. The only package that imports redis; the limiter
(``gateway.limits``) and the circuit breaker's sync (``gateway.routing.health_sync``) build on it.
"""
