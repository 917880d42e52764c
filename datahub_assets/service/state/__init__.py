"""The service's state database (DATAHUB_STATE_URI): models and migrations."""
