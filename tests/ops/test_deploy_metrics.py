"""The balancer never serves the nodes' metrics: both nginx configurations answer /metrics with 404."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize("name", ["nginx.conf", "nginx-local.conf.template"])
def test_nginx_does_not_pass_metrics(name):
    text = (DEPLOY / name).read_text()
    assert re.search(r"location = /metrics \{\s*return 404;\s*\}", text)


def test_compose_lets_its_network_scrape_the_nodes():
    text = (DEPLOY / "docker-compose.yml").read_text()
    subnet = re.search(r"subnet: (\S+)", text).group(1)  # type: ignore[union-attr]
    assert f"FEEDS_METRICS_ALLOW: ${{FEEDS_METRICS_ALLOW:-{subnet}}}" in text
