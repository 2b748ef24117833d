"""A worker on the official SDK that does nothing but answer: reads its payload, sends an empty result."""

from armonik.common import Output
from armonik.worker import TaskHandler, armonik_worker


@armonik_worker()
def noop(task_handler: TaskHandler) -> Output:
    _ = task_handler.payload
    task_handler.send_results({task_handler.expected_results[0]: b""})
    return Output()


if __name__ == "__main__":
    noop.run()
