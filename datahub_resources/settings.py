"""Environment (contract section 3), read in one place.

Every default makes a laptop run work; production sets the variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default.resolve()


@dataclass(frozen=True)
class Settings:
    home: Path
    pipelines_dir: Path
    data_dir: Path
    catalog_uri: str
    warehouse: str
    spark_remote: str | None
    spark_state_dir: Path
    dagster_home: Path
    data_uri: str | None = None
    """DATAHUB_DATA_DIR when it is an `s3://` URI (data paths resolve below it; `data_dir`
    then stays the local default, used only by local helpers such as `datahub demo`)."""

    @classmethod
    def from_env(cls) -> Settings:
        home = _path("DATAHUB_HOME", Path(".datahub"))
        data = os.environ.get("DATAHUB_DATA_DIR") or ""
        remote = data.rstrip("/") if data.startswith(("s3://", "s3a://")) else None
        return cls(
            home=home,
            pipelines_dir=_path("DATAHUB_PIPELINES_DIR", Path("pipelines_xml")),
            data_dir=Path("data").resolve() if remote else _path("DATAHUB_DATA_DIR", Path("data")),
            catalog_uri=os.environ.get("DATAHUB_CATALOG_URI") or f"sqlite:///{home}/catalog.db",
            warehouse=os.environ.get("DATAHUB_WAREHOUSE") or f"file://{home}/warehouse",
            spark_remote=os.environ.get("DATAHUB_SPARK_REMOTE") or None,
            spark_state_dir=_path("DATAHUB_SPARK_STATE", home / "spark"),
            dagster_home=_path("DAGSTER_HOME", home / "dagster"),
            data_uri=remote,
        )

    def data_path(self, app: str, path: str) -> str:
        """A data path: s3:// and absolute paths as written, else under DATAHUB_DATA_DIR/<app>/."""
        if "://" in path or path.startswith("/"):
            return path
        if self.data_uri:
            return f"{self.data_uri}/{app}/{path}"
        return str(self.data_dir / app / path)
