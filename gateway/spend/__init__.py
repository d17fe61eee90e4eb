"""Spend and budgets: every request priced, its cost recorded, and every key, end user and tier capped.

``pricing`` turns an answer's usage into USD (the one home of pricing); ``windows`` names the UTC days and
months spend is counted in; ``budgets`` says which budgets a request touches; ``ledger`` records spend by
key, tier, deployment, route and end user, in batches off the request path; ``books`` holds them for the
process (the budget view behind the ``budget_used`` routing feature, the gauge and the alerts); ``report``
is what ``GET /admin/spend`` and ``gateway spend`` (``cli``) answer. Budgets are reserved and settled by the
limiter, in the same atomic step as the rate limits (``limits.decide``, ``state/admit_v7.lua``).
"""
