"""A fake OpenAI-compatible provider with scripted latency, failures and rate limits."""
