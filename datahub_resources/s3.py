"""S3 for Spark and pyiceberg: the one path rule, the connector jars and the endpoint settings.

**The path rule.** Users, definitions, the Iceberg catalog and the ledger write `s3://bucket/key`.
Spark's Hadoop connector for S3 is S3A, which serves the scheme `s3a://`. So every path handed
to Spark goes through `to_spark` (`s3://` -> `s3a://`) and every path Spark hands back
(`_metadata.file_path`, listings) through `from_spark` (`s3a://` -> `s3://`); nothing else
changes (bucket and key stay as written). pyiceberg and boto3 read `s3://` (and `s3a://`)
directly. The same rule works against any Spark cluster that has hadoop-aws.

**The connector.** `scripts/fetch_jars.sh` (run by `make setup`) puts hadoop-aws of the
Hadoop version pyspark ships and the AWS SDK v2 modules it needs into
`$DATAHUB_JARS_DIR/hadoop-aws-<version>/` (default `~/.cache/datahub/jars`); `connector_jars`
finds them for the local Spark Connect server.

**Endpoint and credentials** come from the standard AWS environment: `AWS_ENDPOINT_URL` (or
`AWS_ENDPOINT_URL_S3`; MinIO, moto, any S3 API: path-style access is then used),
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
`AWS_DEFAULT_REGION`). `hadoop_conf` turns them into `spark.hadoop.fs.s3a.*` settings for the
local server, `iceberg_properties` into pyiceberg's `s3.*` FileIO properties. Unset
variables are left to each library's own default chain (instance profiles, ~/.aws).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pyspark

from datahub_resources.settings import Settings, environ

SPARK_SCHEME, PLATFORM_SCHEME = "s3a://", "s3://"


def to_spark(path: str) -> str:
    """A path as Spark's Hadoop file systems want it: `s3://b/k` -> `s3a://b/k`."""
    return SPARK_SCHEME + path[len(PLATFORM_SCHEME) :] if path.startswith(PLATFORM_SCHEME) else path


def from_spark(path: str) -> str:
    """A path Spark reports, as the platform writes it: `s3a://b/k` -> `s3://b/k`."""
    return PLATFORM_SCHEME + path[len(SPARK_SCHEME) :] if path.startswith(SPARK_SCHEME) else path


def is_s3(path: str) -> bool:
    return path.startswith((PLATFORM_SCHEME, SPARK_SCHEME))


# ------------------------------------------------------------------------------- jars


def hadoop_version() -> str:
    """The Hadoop version of the installed pyspark (from its hadoop-client-api jar)."""
    jars = Path(pyspark.__file__).parent / "jars"
    for jar in jars.glob("hadoop-client-api-*.jar"):
        return jar.stem.removeprefix("hadoop-client-api-")
    raise FileNotFoundError(f"no hadoop-client-api-*.jar in {jars}")


def jars_dir(jars_root: Path | None = None) -> Path:
    """`<jars_root>/hadoop-aws-<version>/`; `jars_root` is DATAHUB_JARS_DIR
    (`Settings.jars_dir`, default `~/.cache/datahub/jars`)."""
    root = jars_root if jars_root is not None else Settings.from_env().jars_dir
    return root.expanduser() / f"hadoop-aws-{hadoop_version()}"


def connector_jars(jars_root: Path | None = None) -> list[str]:
    """The S3A jars fetched by scripts/fetch_jars.sh, or [] when they are not there."""
    folder = jars_dir(jars_root)
    if not (folder / ".complete").exists():
        return []
    return sorted(str(p) for p in folder.glob("*.jar"))


# ------------------------------------------------------------------------------- settings


def _endpoint(env: Mapping[str, str]) -> str | None:
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None


def _region(env: Mapping[str, str]) -> str | None:
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def hadoop_conf(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`spark.hadoop.fs.s3a.*` settings from the AWS environment (contains secrets: never log
    it, never put it on a command line)."""
    env = environ() if env is None else env
    conf: dict[str, str] = {}
    endpoint = _endpoint(env)
    if endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
            endpoint.startswith("https://")
        ).lower()
        # S3-compatible stores may not implement the SDK's default request checksums
        conf["spark.hadoop.fs.s3a.checksum.calculation.enabled"] = "false"
    region = _region(env) or ("us-east-1" if endpoint else None)
    if region:
        conf["spark.hadoop.fs.s3a.endpoint.region"] = region
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        conf["spark.hadoop.fs.s3a.access.key"] = env["AWS_ACCESS_KEY_ID"]
        conf["spark.hadoop.fs.s3a.secret.key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            conf["spark.hadoop.fs.s3a.session.token"] = env["AWS_SESSION_TOKEN"]
            conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
            )
    return conf


def iceberg_properties(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """pyiceberg FileIO properties (`s3.endpoint`, keys, region) from the AWS environment."""
    env = environ() if env is None else env
    props: dict[str, str] = {}
    endpoint = _endpoint(env)
    if endpoint:
        props["s3.endpoint"] = endpoint
        props["s3.force-virtual-addressing"] = "false"
    region = _region(env) or ("us-east-1" if endpoint else None)
    if region:
        props["s3.region"] = region
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        props["s3.access-key-id"] = env["AWS_ACCESS_KEY_ID"]
        props["s3.secret-access-key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            props["s3.session-token"] = env["AWS_SESSION_TOKEN"]
    return props


def arrow_filesystem(env: Mapping[str, str] | None = None):
    """A pyarrow S3FileSystem for the same endpoint and credentials (listing staged files)."""
    import pyarrow.fs as pafs

    env = environ() if env is None else env
    endpoint = _endpoint(env)
    kwargs: dict = {"region": _region(env) or "us-east-1"}
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        kwargs.update(endpoint_override=rest or scheme, scheme=scheme if rest else "https")
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        kwargs.update(
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
            session_token=env.get("AWS_SESSION_TOKEN"),
        )
    return pafs.S3FileSystem(**kwargs)


def bucket_conf(client, bucket: str) -> dict[str, str]:
    """Per-bucket S3A settings (`fs.s3a.bucket.<bucket>.*`) that make Spark reach `bucket` as
    the boto3 `client` does, when that client talks to an S3-compatible endpoint of its own
    (MinIO, moto: configured explicitly, e.g. in the `s3` resource); {} for AWS itself,
    where Spark's own credential chain applies (and frozen temporary keys would expire)."""
    endpoint = str(getattr(client.meta, "endpoint_url", "") or "")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    if not endpoint or host.endswith("amazonaws.com"):
        return {}
    prefix = f"fs.s3a.bucket.{bucket}."
    conf = {
        prefix + "endpoint": endpoint,
        prefix + "path.style.access": "true",
        prefix + "connection.ssl.enabled": str(endpoint.startswith("https://")).lower(),
        prefix + "endpoint.region": client.meta.region_name or "us-east-1",
    }
    get = getattr(client, "_get_credentials", None)
    credentials = get() if get else None
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        conf[prefix + "access.key"] = frozen.access_key
        conf[prefix + "secret.key"] = frozen.secret_key
        if frozen.token:
            conf[prefix + "session.token"] = frozen.token
            conf[prefix + "aws.credentials.provider"] = (
                "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
            )
    return conf
