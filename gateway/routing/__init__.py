"""Routing: which deployments may serve a request (``resolve``) and walking them (``execute``)."""
