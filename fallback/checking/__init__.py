"""Checking the main site: the probe, the decision and its loop, the quorum, probe agents, the status documents."""
