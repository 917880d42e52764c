"""Python assets beside the XML pipelines: `pipelines_xml/<app>/python/*.py`.

`table_asset` (assets.py) declares a table asset keyed `[app, layer, name]`, stored by the
Iceberg IO manager (`datahub_resources.iceberg_io`); `checks` builds its checks (the XML
check models); `discovery` imports the modules at definitions load. docs/pipelines.md,
"Python assets", is the user's guide.
"""

from datahub_assets.python import checks
from datahub_assets.python.assets import table_asset, table_key
from datahub_assets.python.discovery import discover

__all__ = ["checks", "discover", "table_asset", "table_key"]
