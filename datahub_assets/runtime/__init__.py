"""Run time: the step every asset and job op runs (engine opening, retries, what a
step reports), and notification delivery."""
