"""Wiring: Definitions, resources per environment, jobs and schedules."""
