"""The service process's one parse cache (spec.loader.ParseCache): the overlay loads of
validation, the plan and the pipelines index reparse only the files a change or a commit
altered."""

from __future__ import annotations

from datahub_assets.spec.loader import ParseCache, read_pipeline_text

PARSE_CACHE_ENTRIES = 20_000
PARSE_CACHE = ParseCache(read_pipeline_text, size=PARSE_CACHE_ENTRIES)
