-- First start of the compose PostgreSQL: one database for the Dagster instance, one for
-- the Iceberg SQL catalog (pyiceberg creates its tables iceberg_tables and
-- iceberg_namespace_properties there on first use; Trino's JDBC catalog reads the same), and
-- one for the service's state (DATAHUB_STATE_URI; `datahub serve` migrates it on start).
CREATE DATABASE dagster;
CREATE DATABASE datahub_catalog;
CREATE DATABASE datahub_state;
