"""Weighted routing follows the weights whatever the client sends (issue 8, finding 15).

The choice was seeded with the client's ``x-request-id``, so a client could pick the deployment:
``rid-72`` sent 100 of 100 requests to the weight-1 deployment of a 1:3 rule.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
from harness import TEST_KEY
from policy.support import MESSAGES, Launch, account, config, write_policy

from gateway.fake.testing import FakeUpstream

POLICY = """
routes:
  wr:
    - name: split
      strategy: weighted
      candidates: [a/w-light, b/w-heavy]
      weights: {a/w-light: 1, b/w-heavy: 3}
"""


def test_the_same_request_id_200_times_splits_as_the_weights_say(
    launch: Launch, policy_dir: Path, fake: FakeUpstream, fake2: FakeUpstream
) -> None:
    write_policy(policy_dir, POLICY)
    providers = {"a": account(fake.url, {"w-light": {}}), "b": account(fake2.url, {"w-heavy": {}})}
    gateway = launch(lambda port: config(port, providers, policy_dir))
    served: Counter[str] = Counter()
    headers = {"authorization": f"Bearer {TEST_KEY}", "x-request-id": "rid-72"}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=10) as client:
        for _ in range(200):
            response = client.post("/chat/completions", json={"model": "wr", "messages": MESSAGES, "max_tokens": 3})
            assert response.status_code == 200, response.text
            served[response.headers["x-gateway-deployment"]] += 1
    # 1:3 of 200 is 50:150; a binomial standard deviation is about 6, so 4 of them either side.
    assert 25 <= served["a/w-light"] <= 75, served
    assert served["a/w-light"] + served["b/w-heavy"] == 200
