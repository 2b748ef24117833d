"""Task queues: one logical queue per partition, carrying the ids of tasks ready to run."""
