"""The Spark engine (Spark Connect): its session, readers and writers."""
