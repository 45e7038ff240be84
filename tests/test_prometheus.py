"""deploy/prometheus: the scrape config and the alert rules checked by promtool (Debian's `prometheus` package),
the rules' unit tests run, and every series the rules and the Grafana dashboard read exposed by the app."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
TOKEN = "metrics-token-for-the-test-suite"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is missing: Debian's prometheus package provides it (.ci/run installs it)"
)
SERIES = re.compile(r"\bfallback_[a-z_]+\b")


def promtool(*args: str, cwd: Path = DEPLOY) -> str:
    """Run promtool; its output, or the test fails with it."""
    done = subprocess.run([PROMTOOL or "promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def env(env):
    """The shared test environment, with the metrics token set."""
    return {**env, "FALLBACK_METRICS_TOKEN": TOKEN}


@needs_promtool
def test_the_alert_rules_pass_promtool_and_their_unit_tests():
    assert "SUCCESS: 5 rules found" in promtool("check", "rules", "fallback.rules.yml")
    assert "SUCCESS" in promtool("test", "rules", "fallback.rules.test.yml")


@needs_promtool
def test_the_scrape_config_passes_promtool_with_its_token_file_in_place(tmp_path):
    # promtool checks that the token file exists: the recipe's path is the operator's machine's.
    token_file = tmp_path / "fallback-metrics-token"
    token_file.write_text(TOKEN + "\n")
    config = (DEPLOY / "prometheus.yml").read_text()
    assert "/etc/prometheus/fallback-metrics-token" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/prometheus/fallback-metrics-token", str(token_file)))
    shutil.copy(DEPLOY / "fallback.rules.yml", tmp_path)
    assert "SUCCESS" in promtool("check", "config", "prometheus.yml", cwd=tmp_path)


def test_the_scrape_config_sends_a_bearer_token_to_the_metrics_path():
    [job] = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())["scrape_configs"]
    assert job["metrics_path"] == "/_fallback/metrics"
    assert job["authorization"]["type"] == "Bearer" and job["authorization"]["credentials_file"]
    assert job["scheme"] == "https"


def test_the_rules_alert_on_the_page_the_heartbeat_and_failed_mails_and_webhooks():
    [group] = yaml.safe_load((DEPLOY / "fallback.rules.yml").read_text())["groups"]
    reads = {rule["alert"]: set(SERIES.findall(rule["expr"])) for rule in group["rules"]}
    assert reads["FallbackServingThePage"] == {"fallback_up"}
    assert "fallback_checker_heartbeat_age_seconds" in reads["FallbackCheckerHeartbeatStale"]
    assert reads["FallbackFollowupMailsFailing"] == {"fallback_followup_mails_total"}
    assert reads["FallbackWebhookDeliveriesFailing"] == {"fallback_webhook_deliveries_total"}


def test_every_series_the_rules_and_the_dashboard_read_is_one_the_app_exposes(client):
    response = client.get("/_fallback/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    exposed = {
        sample.name
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = [rule["expr"] for rule in yaml.safe_load((DEPLOY / "fallback.rules.yml").read_text())["groups"][0]["rules"]]
    read = {name for query in queries + rules for name in SERIES.findall(query)}
    assert read and read <= exposed, read - exposed
