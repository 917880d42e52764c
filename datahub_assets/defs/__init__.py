"""The project's `defs/` folder (dg): each subfolder's `defs.yaml` instantiates a component.

`pipelines/defs.yaml` is the one `DataHubPipelines` instance: every pipeline under
`pipelines_xml/` (or DATAHUB_PIPELINES_DIR). `datahub_assets.definitions` loads this folder.
"""
