"""State stores: sessions, tasks, results and partitions, with the transactions the domain needs."""
