-- First start of the compose PostgreSQL: one database for the Dagster instance and one for
-- the Iceberg SQL catalog (pyiceberg creates its tables iceberg_tables and
-- iceberg_namespace_properties there on first use; Trino's JDBC catalog reads the same).
CREATE DATABASE dagster;
CREATE DATABASE datahub_catalog;
