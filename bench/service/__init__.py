"""Benchmarks of the front door (`datahub serve`, issue #21): bench/service/README.md."""
