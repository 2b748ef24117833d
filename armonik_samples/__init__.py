"""ArmoniK samples and test clients, written with the official `armonik` SDK, and the worker that runs them.

Each sample module has a client (`python -m armonik_samples.<name> --endpoint host:port --partition default`)
and the function the worker runs for its tasks (`process(task_handler) -> Output`). The bundled generic worker
(`python -m armonik_samples.worker`) serves them all: every client puts the sample's name in its session's
default task options under the key `SAMPLE_OPTION` ("sample"), and the worker dispatches on it.

| sample | what its tasks do |
|---|---|
| `hello_world` | payload "World" -> result "Hello World!" |
| `multiple_results` | one task writes each of its N expected results |
| `linear_subtasking` | each task hands its output over to a subtask, N levels deep |
| `subtasking` | fork-join sum of 1..N: split in halves, then an aggregation task takes over the output |
| `dynamic_submission` | a task splits its table into subtasks chosen from its input, plus an aggregation |
| `htcmock` | ArmoniK's HtcMock: a tree of tasks of a given depth with busy work and sized results |
| `bench` | ArmoniK's Bench: N independent tasks, timed per phase, throughput in tasks/s |
| `testing` | behaviours for end-to-end tests of the compute plane: echo, fail, crash once, sleep, exit |
"""

#: The task option naming the sample that a task belongs to (set in each session's default task options).
SAMPLE_OPTION = "sample"

SAMPLES = (
    "hello_world",
    "multiple_results",
    "linear_subtasking",
    "subtasking",
    "dynamic_submission",
    "htcmock",
    "bench",
    "testing",
)

__all__ = ["SAMPLES", "SAMPLE_OPTION"]
