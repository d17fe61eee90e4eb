"""llm-gateway: an OpenAI-compatible gateway over a fleet of LLM provider accounts."""
