"""The processes: the command line, the serving master and its workers, background jobs."""
