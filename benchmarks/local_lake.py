"""A local Iceberg lake for benchmarks and tests: an S3-compatible server over HTTP on
127.0.0.1 (moto's server mode) holding the table files, and a SQL catalog in a fresh database
of a PostgreSQL server, configured the pyiceberg way (environment variables, which every
process started afterwards inherits)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
import psycopg
from moto.server import ThreadedMotoServer

BUCKET = "cdr-lake"


@contextmanager
def local_lake(postgres_url: str, catalog: str = "lake", moto_port: int | None = None
               ) -> Iterator[str]:
    """Yields the catalog's name; `moto_port`: an S3 server already running."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    server = None
    if moto_port is None:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        moto_port = server.get_host_and_port()[1]
    database = f"cdr_iceberg_{catalog}_{os.getpid()}"
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        con.execute(f"CREATE DATABASE {database}")
    endpoint = f"http://127.0.0.1:{moto_port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    server_part = postgres_url.split("://", 1)[1].rsplit("/", 1)[0]
    prefix = f"PYICEBERG_CATALOG__{catalog.upper()}__"
    settings = {"TYPE": "sql", "URI": f"postgresql+psycopg2://{server_part}/{database}",
                "WAREHOUSE": f"s3://{BUCKET}/{catalog}", "S3__ENDPOINT": endpoint,
                "S3__REGION": "us-east-1", "S3__ACCESS_KEY_ID": "testing",
                "S3__SECRET_ACCESS_KEY": "testing"}
    saved = {prefix + name: os.environ.get(prefix + name) for name in settings}
    os.environ.update({prefix + name: value for name, value in settings.items()})
    try:
        yield catalog
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if server is not None:
            server.stop()
