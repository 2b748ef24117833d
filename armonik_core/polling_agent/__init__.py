"""The polling agent: takes tasks of its partition, runs them on its worker, reports what happened."""
