"""See datahub_assets/service/__init__.py."""
