"""``gateway simulate``: what a routing policy will sustain and cost, before it is deployed.

The gateway's own routing and request path run in virtual time against modelled providers:

- ``workload`` (the values) and ``reader`` (the file), with ``distributions`` and ``arrivals``: the traffic;
- ``clock``: the virtual-time event loop the gateway's coroutines run on unchanged;
- ``client``: the agent platform, each call through ``decision.decide`` and ``routing.walk``;
- ``providers``: the one model, the walk's send step; ``watch``: the real limiter and record step, observed;
- ``run``: one run; ``search``: the highest rate held; ``tally``, ``report``, ``table``, ``chart``: the figures;
- ``cli``: the command.
"""
