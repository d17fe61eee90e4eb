"""llm-gateway: an OpenAI-compatible gateway over a fleet of LLM provider accounts."""

from gateway import compiled

compiled.install()  # before any of the compiled modules is imported: see gateway/compiled.py
