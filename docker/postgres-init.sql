-- The warehouse lives beside Dagster's own storage, in a database of its own.
CREATE DATABASE warehouse OWNER dagster;
-- The Iceberg SQL catalog (CDR_WAREHOUSE_URL=iceberg://lake/cdr): table metadata pointers.
CREATE DATABASE iceberg_catalog OWNER dagster;
