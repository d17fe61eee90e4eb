"""The HTTP surface: receive, check, hand to routing, render the answer (JSON or SSE)."""
