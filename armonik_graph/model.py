"""The graph of one session: task and result nodes in a rustworkx digraph, fed by API pages and events.

Why rustworkx: its graphs live in Rust (a node costs a pointer and two edge indices, an edge three words),
so a session of a million tasks and two million results fits in a few hundred megabytes, where networkx keeps
a dict per node and per edge. Node payloads are `None`; what a node *is* lives in flat arrays indexed by the
node's index (kind, status, owner, four timestamps) and ids are interned once in a dict and a list, so that a
node costs about a hundred bytes beyond its id string.

Every update is idempotent and, for a session that is not paused and resumed, commutative: a status only
moves forward in the task (or result) life cycle, an edge is set rather than added, an owner follows the
chain of known owner changes to its end, and an id named before its own record arrives gets a placeholder
node of the right kind (status UNSPECIFIED) that the record fills in later. That is what lets a rebuild
list pages while the events of the same moments are buffered and then applied in any order.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable
from enum import IntEnum
from typing import Any

import rustworkx as rx
from armonik.protogen.common.result_status_pb2 import ResultStatus
from armonik.protogen.common.task_status_pb2 import TaskStatus

#: No node (an owner not known yet).
NONE = -1


class Kind(IntEnum):
    TASK = 0
    RESULT = 1


class Edge(IntEnum):
    """What an edge means (its payload; small ints are shared objects, so an edge payload costs nothing)."""

    #: task -> result it is expected to produce (and still owns)
    OUTPUT = 0
    #: result -> task that needs it (a data dependency or the task's payload)
    INPUT = 1
    #: parent task -> subtask it submitted
    SUBTASK = 2
    #: task -> result it was expected to produce and handed over to another task (never stored: an OUTPUT edge
    #: from a task that no longer owns the result reads as DELEGATED, see `SessionGraph.edge_kind`)
    DELEGATED = 3
    #: failed attempt -> its retry
    RETRY = 4


# Order of the life cycles: an update never moves a node back (PAUSED and SUBMITTED share a rank, so that a
# pause and a resume both apply in the order the event stream gives them).
TASK_RANK = {
    TaskStatus.TASK_STATUS_UNSPECIFIED: -1,
    TaskStatus.TASK_STATUS_CREATING: 0,
    TaskStatus.TASK_STATUS_PENDING: 1,
    TaskStatus.TASK_STATUS_SUBMITTED: 2,
    TaskStatus.TASK_STATUS_PAUSED: 2,
    TaskStatus.TASK_STATUS_DISPATCHED: 3,
    TaskStatus.TASK_STATUS_PROCESSING: 4,
    TaskStatus.TASK_STATUS_PROCESSED: 5,
    TaskStatus.TASK_STATUS_CANCELLING: 5,
    TaskStatus.TASK_STATUS_COMPLETED: 6,
    TaskStatus.TASK_STATUS_ERROR: 6,
    TaskStatus.TASK_STATUS_TIMEOUT: 6,
    TaskStatus.TASK_STATUS_CANCELLED: 6,
    TaskStatus.TASK_STATUS_RETRIED: 7,
}
RESULT_RANK = {
    ResultStatus.RESULT_STATUS_UNSPECIFIED: -1,
    ResultStatus.RESULT_STATUS_CREATED: 0,
    ResultStatus.RESULT_STATUS_COMPLETED: 1,
    ResultStatus.RESULT_STATUS_ABORTED: 1,
    ResultStatus.RESULT_STATUS_DELETED: 2,
    ResultStatus.RESULT_STATUS_NOTFOUND: 2,
}
TASK_STATUS_NAMES = {v: k.removeprefix("TASK_STATUS_") for k, v in TaskStatus.items()}
RESULT_STATUS_NAMES = {v: k.removeprefix("RESULT_STATUS_") for k, v in ResultStatus.items()}

# Timestamp columns of a node (seconds since the epoch, 0.0 when unknown). A result uses CREATED and ENDED.
CREATED, SUBMITTED, STARTED, ENDED = range(4)
#: Which column an event's status stamps with the time it was received (events carry no timestamps).
_STAMPED = {
    TaskStatus.TASK_STATUS_SUBMITTED: SUBMITTED,
    TaskStatus.TASK_STATUS_DISPATCHED: STARTED,
    TaskStatus.TASK_STATUS_PROCESSING: STARTED,
    TaskStatus.TASK_STATUS_COMPLETED: ENDED,
    TaskStatus.TASK_STATUS_ERROR: ENDED,
    TaskStatus.TASK_STATUS_TIMEOUT: ENDED,
    TaskStatus.TASK_STATUS_CANCELLED: ENDED,
    TaskStatus.TASK_STATUS_RETRIED: ENDED,
}


def seconds(stamp: Any) -> float:
    """A protobuf Timestamp as float seconds (0.0 when unset)."""
    return stamp.seconds + stamp.nanos * 1e-9 if stamp.seconds or stamp.nanos else 0.0


class SessionGraph:
    """Tasks and results of one session with the relations the API exposes; see the module notes."""

    __slots__ = (
        "session_id",
        "graph",
        "_index",
        "ids",
        "kind",
        "status",
        "owner",
        "times",
        "errors",
        "_moves",
    )

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.graph: rx.PyDiGraph = rx.PyDiGraph(multigraph=False)
        self._index: dict[str, int] = {}
        self.ids: list[str] = []
        self.kind = array("b")
        self.status = array("b")
        #: result -> node of the task that owns it now (NONE: uploaded by the client or not claimed yet)
        self.owner = array("i")
        self.times = [array("d") for _ in range(4)]
        #: task node -> error message of its output (failed tasks only)
        self.errors: dict[int, str] = {}
        #: result node -> {previous owner node: new owner node}, for the results handed over
        self._moves: dict[int, dict[int, int]] = {}

    def copy(self) -> SessionGraph:
        """An independent copy (a listing kept aside, then brought up to date by events)."""
        other = SessionGraph(self.session_id)
        other.graph = self.graph.copy()
        other._index = dict(self._index)
        other.ids = list(self.ids)
        other.kind, other.status, other.owner = (
            array("b", self.kind),
            array("b", self.status),
            array("i", self.owner),
        )
        other.times = [array("d", column) for column in self.times]
        other.errors = dict(self.errors)
        other._moves = {result: dict(moves) for result, moves in self._moves.items()}
        return other

    # -- nodes ------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def index(self, node_id: str) -> int | None:
        return self._index.get(node_id)

    def _node(self, node_id: str, kind: Kind) -> int:
        found = self._index.get(node_id)
        if found is not None:
            return found
        index: int = self.graph.add_node(None)
        self._index[node_id] = index
        self.ids.append(node_id)
        self.kind.append(kind)
        self.status.append(0)
        self.owner.append(NONE)
        for column in self.times:
            column.append(0.0)
        return index

    def task(self, task_id: str) -> int:
        return self._node(task_id, Kind.TASK)

    def result(self, result_id: str) -> int:
        return self._node(result_id, Kind.RESULT)

    def is_task(self, node: int) -> bool:
        return self.kind[node] == Kind.TASK

    def tasks(self) -> list[int]:
        return [n for n, k in enumerate(self.kind) if k == Kind.TASK]

    def results(self) -> list[int]:
        return [n for n, k in enumerate(self.kind) if k == Kind.RESULT]

    def status_name(self, node: int) -> str:
        names = TASK_STATUS_NAMES if self.kind[node] == Kind.TASK else RESULT_STATUS_NAMES
        return names.get(self.status[node], str(self.status[node]))

    # -- updates ----------------------------------------------------------------------------------------------
    def set_status(self, node: int, status: int) -> bool:
        """Move `node` to `status` unless it is already further in its life cycle; True when it moved."""
        ranks = TASK_RANK if self.kind[node] == Kind.TASK else RESULT_RANK
        if ranks.get(status, -1) < ranks.get(self.status[node], -1):  # type: ignore[call-overload]
            return False
        self.status[node] = status
        return True

    def _stamp(self, node: int, column: int, value: float) -> None:
        if value:
            self.times[column][node] = value

    def _task_parent(self, parent_ids: Iterable[str]) -> str | None:
        """The direct parent: the last of the ancestry that is a task (the session id may lead it)."""
        parents = [p for p in parent_ids if p and p != self.session_id]
        return parents[-1] if parents else None

    def _link_task(
        self,
        node: int,
        payload_id: str,
        outputs: Iterable[str],
        dependencies: Iterable[str],
        parent_id: str | None,
        retry_of: Iterable[str],
    ) -> None:
        edges: list[tuple[int, int, int]] = []
        for output_id in outputs:
            output = self.result(output_id)
            edges.append((node, output, Edge.OUTPUT))
            if self.owner[output] == NONE:
                self._set_owner(output, node)
        inputs = list(dependencies)
        if payload_id:
            inputs.append(payload_id)
        edges.extend((self.result(r), node, Edge.INPUT) for r in inputs)
        if parent_id:
            edges.append((self.task(parent_id), node, Edge.SUBTASK))
        retries = list(retry_of)
        if retries:
            edges.append((self.task(retries[-1]), node, Edge.RETRY))
        self.graph.add_edges_from(edges)

    def _set_owner(self, result: int, task: int) -> None:
        moves = self._moves.get(result)
        seen = {task}
        while moves and task in moves and moves[task] not in seen:
            task = moves[task]
            seen.add(task)
        self.owner[result] = task

    def move_owner(self, result: int, previous: int, current: int) -> None:
        """`previous` handed `result` over to `current` (output delegation, or a retry taking over)."""
        self._moves.setdefault(result, {})[previous] = current
        # Both had it among their expected outputs; their records may not have arrived yet.
        self.graph.add_edges_from([(previous, result, Edge.OUTPUT), (current, result, Edge.OUTPUT)])
        owner = self.owner[result]
        self._set_owner(result, previous if owner == NONE else owner)

    def _owner_node(self, owner_id: str) -> int:
        return NONE if not owner_id or owner_id == self.session_id else self.task(owner_id)

    # -- API records --------------------------------------------------------------------------------------------
    def add_task_records(self, tasks: Iterable[Any]) -> None:
        """`TaskDetailed` messages (ListTasksDetailed pages)."""
        for t in tasks:
            node = self.task(t.id)
            self.set_status(node, t.status)
            self._stamp_record(node, t)
            if t.output.error:
                self.errors[node] = t.output.error
            self._link_task(
                node,
                t.payload_id,
                t.expected_output_ids,
                t.data_dependencies,
                self._task_parent(t.parent_task_ids),
                t.retry_of_ids,
            )

    def add_task_times(self, tasks: Iterable[Any]) -> None:
        """The recorded times of `TaskDetailed` messages, over the times events were applied (a task read
        back once it ended; see `source.LiveGraph`). A task the graph does not hold is left out."""
        for t in tasks:
            node = self._index.get(t.id)
            if node is not None:
                self._stamp_record(node, t)

    def _stamp_record(self, node: int, t: Any) -> None:
        """The times a `TaskDetailed` holds (a time it does not hold leaves the node's as it was). The start
        is upstream's `started_at` (the worker was called), `acquired_at` for a task not started yet."""
        self._stamp(node, CREATED, seconds(t.created_at))
        self._stamp(node, SUBMITTED, seconds(t.submitted_at))
        self._stamp(node, STARTED, seconds(t.started_at) or seconds(t.acquired_at))
        self._stamp(node, ENDED, seconds(t.ended_at))

    def add_result_records(self, results: Iterable[Any]) -> None:
        """`ResultRaw` messages (ListResults pages)."""
        for r in results:
            node = self.result(r.result_id)
            self.set_status(node, r.status)
            self._stamp(node, CREATED, seconds(r.created_at))
            self._stamp(node, ENDED, seconds(r.completed_at))
            owner = self._owner_node(r.owner_task_id)
            if owner != NONE:
                self.graph.add_edge(owner, node, Edge.OUTPUT)
                self._set_owner(node, owner)

    def apply_event(self, event: Any, now: float | None = None) -> int | None:
        """One `EventSubscriptionResponse`; returns the node it touched (None for an event of another kind)."""
        kind = event.WhichOneof("update")
        when = time.time() if now is None else now
        if kind == "task_status_update":
            update = event.task_status_update
            node = self.task(update.task_id)
            previous = self.status[node]
            # A repeated status (the events service may send a change twice) keeps the time first given.
            if (
                self.set_status(node, update.status)
                and update.status in _STAMPED
                and previous != update.status
            ):
                self._stamp(node, _STAMPED[update.status], when)
            return node
        if kind == "result_status_update":
            update = event.result_status_update
            node = self.result(update.result_id)
            if self.set_status(node, update.status) and update.status != ResultStatus.RESULT_STATUS_CREATED:
                self._stamp(node, ENDED, when)
            return node
        if kind == "result_owner_update":
            update = event.result_owner_update
            node = self.result(update.result_id)
            current = self._owner_node(update.current_owner_id)
            previous = self._owner_node(update.previous_owner_id)
            if current != NONE and previous != NONE:
                self.move_owner(node, previous, current)
            elif current != NONE and self.owner[node] == NONE:
                self._set_owner(node, current)
            return node
        if kind == "new_task":
            new = event.new_task
            node = self.task(new.task_id)
            if self.set_status(node, new.status) and not self.times[CREATED][node]:
                self.times[CREATED][node] = when
            parent = self._task_parent(new.parent_task_ids) or (
                new.origin_task_id if new.origin_task_id != self.session_id else None
            )
            self._link_task(
                node,
                new.payload_id,
                new.expected_output_keys,
                new.data_dependencies,
                parent,
                new.retry_of_ids,
            )
            return node
        if kind == "new_result":
            new = event.new_result
            node = self.result(new.result_id)
            self.set_status(node, new.status)
            if not self.times[CREATED][node]:
                self.times[CREATED][node] = when
            owner = self._owner_node(new.owner_id)
            if owner != NONE:
                self.graph.add_edge(owner, node, Edge.OUTPUT)
                if self.owner[node] == NONE:
                    self._set_owner(node, owner)
            return node
        return None

    # -- reading ------------------------------------------------------------------------------------------------
    def producer(self, result: int) -> int:
        """The attempt that will produce `result`: its owner, followed through retries (NONE: none)."""
        task = self.owner[result]
        seen = set()
        while task != NONE and self.status[task] == TaskStatus.TASK_STATUS_RETRIED and task not in seen:
            seen.add(task)
            retries = [t for _, t, e in self.graph.out_edges(task) if e == Edge.RETRY]
            if not retries:
                break
            task = retries[0]
        return task

    def inputs(self, task: int) -> list[int]:
        """Results `task` needs before it may run."""
        return [r for r, _, e in self.graph.in_edges(task) if e == Edge.INPUT]

    def edge_kind(self, source: int, target: int, stored: int) -> Edge:
        """What an edge means now: an output its task handed over reads as DELEGATED."""
        if stored == Edge.OUTPUT and self.owner[target] != source:
            return Edge.DELEGATED
        return Edge(stored)

    def edges(self) -> list[tuple[int, int, Edge]]:
        return [(a, b, self.edge_kind(a, b, e)) for a, b, e in self.graph.weighted_edge_list()]

    def snapshot(self) -> dict[str, Any]:
        """The graph's structure and statuses by id, comparable between two graphs (no timestamps)."""
        ids = self.ids
        return {
            "nodes": {ids[n]: (int(self.kind[n]), int(self.status[n])) for n in range(len(ids))},
            "owners": {
                ids[n]: ids[self.owner[n]]
                for n in range(len(ids))
                if self.kind[n] == Kind.RESULT and self.owner[n] != NONE
            },
            "edges": sorted((ids[a], ids[b], e) for a, b, e in self.edges()),
        }
