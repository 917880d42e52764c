"""The demo: generated example data and the private local database servers that
`datahub demo` and the tests start (not production resources)."""
