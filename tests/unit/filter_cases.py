"""What the filter tests of every store share: the hand-checked sample tasks, the fields filtered on and the
values tried, and the Hypothesis strategies that draw records and filters from them.

Each store's test adds its own pitfalls on top (odd map keys for MongoDB, SQL wildcards for SQLite) with
`sample_tasks(changes=..., options=...)` and `widened(...)`, so that what is common is written once and what
a test adds is plain to see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

from hypothesis import strategies as st

from armonik_core.domain.filters import OPERATORS, Condition, FieldKind, FieldRef, Filter, Op, matches
from armonik_core.domain.options import TaskOptions
from armonik_core.domain.records import Task
from armonik_core.domain.statuses import TaskStatus

S, N, D, T, B, A, ST = (
    FieldKind.STRING,
    FieldKind.NUMBER,
    FieldKind.DATE,
    FieldKind.DURATION,
    FieldKind.BOOLEAN,
    FieldKind.ARRAY,
    FieldKind.STATUS,
)
#: A value a store may find unset (NULL, or null written by another tool) where the record's type has one.
UNSET = cast(Any, None)

V = TypeVar("V")


def cond(path: str, kind: FieldKind, op: Op, value: Any, key: str | None = None) -> Condition:
    return Condition(FieldRef(path, key), kind, op, value)


def task(task_id: str, **changes: Any) -> Task:
    """A COMPLETED task of session s1 in partition p, with `changes`."""
    base = Task(
        task_id=task_id,
        session_id="s1",
        status=TaskStatus.COMPLETED,
        options=TaskOptions(max_duration=5.0, max_retries=1, priority=1, partition_id="p"),
        payload_id="payload",
        created_at=10.0,
    )
    return replace(base, **changes)


def sample_tasks(
    changes: Mapping[str, Mapping[str, Any]] | None = None,
    options: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Task]:
    """The five tasks t0-t4 the hand-checked cases are written against, made anew on each call.

    A store's test adds its own pitfalls, by task id: `changes` of attributes, and further `options` keys
    (after the sample's own)."""
    tasks = [
        task(
            "t0",
            created_by="client",
            pod_hostname="node-1.local",
            data_dependencies=["r1", "r2"],
            expected_output_ids=["o1"],
            started_at=11.0,
            ended_at=20.5,
            pod_ttl=100.0,
            options=TaskOptions(5.0, 2, 3, "p", options={"k": "v", "q\"u'o.te": "x%_y"}),
        ),
        task(
            "t1",
            session_id="s2",
            status=TaskStatus.SUBMITTED,
            payload_id="a%b_c",
            pod_hostname=UNSET,
            options=TaskOptions(0.0, 0, -1, "", options={}),
        ),
        task(
            "t2",
            status=TaskStatus.ERROR,
            payload_id="100%",
            created_by=UNSET,
            error="Boom: _ failed",
            data_dependencies=["r%"],
            started_at=12.0,
            ended_at=11.0,
            options=TaskOptions(0.5, 3, 0, "gpu", options={"k": "V"}),
        ),
        task(
            "t3",
            session_id="s2",
            status=TaskStatus.PROCESSING,
            payload_id="é漢字",
            created_by="漢",
            data_dependencies=["", "r1"],
            created_at=10.5,
            started_at=10.5,
            pod_ttl=10.5,
            options=TaskOptions(10.0, 1, 1, "p", options={"k": "", "z": "é"}),
        ),
        task(
            "t4",
            status=TaskStatus.CANCELLED,
            payload_id="_",
            created_by="CLIENT",
            data_dependencies=["r2"],
            created_at=0.0,
            ended_at=0.0,
            options=TaskOptions(5.0, 1, 2, "p%", options={"k": "v%"}),
        ),
    ]
    for t in tasks:
        extra = (options or {}).get(t.task_id, {})
        t.options.options.update(extra)
        for name, value in (changes or {}).get(t.task_id, {}).items():
            setattr(t, name, value)
    return tasks


def accepted(records: Sequence[Any], flt: Filter, key: str = "task_id") -> list[str]:
    """The ids of the records `matches` accepts: what a store's query must select."""
    return sorted(getattr(r, key) for r in records if matches(r, flt))


# -- fields and values -------------------------------------------------------------------------------------------
#: The task fields every store's tests filter on, by kind.
TASK_FIELDS_BY_KIND: dict[FieldKind, list[FieldRef]] = {
    S: [
        FieldRef("session_id"),
        FieldRef("payload_id"),
        FieldRef("created_by"),
        FieldRef("pod_hostname"),
        FieldRef("error"),
        FieldRef("options.partition_id"),
        FieldRef("options.options", "k"),
        FieldRef("options.options", "q\"u'o.te"),
        FieldRef("options.options", "missing"),
    ],
    N: [FieldRef("options.max_retries"), FieldRef("options.priority")],
    D: [FieldRef("created_at"), FieldRef("started_at"), FieldRef("ended_at"), FieldRef("pod_ttl")],
    T: [
        FieldRef("creation_to_end_duration"),
        FieldRef("processing_to_end_duration"),
        FieldRef("options.max_duration"),
    ],
    ST: [FieldRef("status")],
    A: [FieldRef("data_dependencies"), FieldRef("expected_output_ids")],
}
#: The values every store's tests try, by kind: around the sample tasks' own values.
VALUES_BY_KIND: dict[FieldKind, list[Any]] = {
    S: ["", "s1", "s2", "p", "P", "%", "_", "a%b_c", "v", "V", "v%", "é", "漢", "字", "a\x00"],
    N: [-2, -1, 0, 1, 2, 3, 4],
    D: [0.0, 10.0, 10.5, 11.0, 20.5, 100.0, 1e12],
    T: [0.0, 0.5, 1.0, 5.0, 9.5, 10.0, 10.5],
    B: [True, False],
    ST: [int(s) for s in TaskStatus],
    A: ["", "r1", "r2", "r%", "o1", "x"],
}


def widened(
    base: Mapping[FieldKind, list[V]], extra: Mapping[FieldKind, list[V]]
) -> dict[FieldKind, list[V]]:
    """`base` with the entries of `extra` added after its own, kind by kind."""
    kinds = [*base, *(k for k in extra if k not in base)]
    return {kind: [*base.get(kind, []), *extra.get(kind, [])] for kind in kinds}


def combinations(fields: Mapping[FieldKind, list[FieldRef]]) -> list[tuple[FieldRef, FieldKind, Op]]:
    """Every field with every operator its kind allows."""
    return [
        (ref, kind, op) for kind, refs in fields.items() for ref in refs for op in sorted(OPERATORS[kind])
    ]


# -- random filters and records -----------------------------------------------------------------------------------
def filters_over(
    fields: Mapping[FieldKind, list[FieldRef]], values: Mapping[FieldKind, list[Any]]
) -> st.SearchStrategy[Filter]:
    """Disjunctions of up to three conjunctions of up to three conditions on `fields`, with `values`."""
    conditions = st.sampled_from([(ref, kind) for kind, refs in fields.items() for ref in refs]).flatmap(
        lambda pair: st.builds(
            Condition,
            st.just(pair[0]),
            st.just(pair[1]),
            st.sampled_from(sorted(OPERATORS[pair[1]])),
            st.sampled_from(values[pair[1]]),
        )
    )
    return st.lists(st.lists(conditions, min_size=0, max_size=3), min_size=0, max_size=3).map(
        lambda conjunctions: Filter.of(*conjunctions)
    )


def tasks_from(
    *,
    texts: st.SearchStrategy[Any],
    payloads: st.SearchStrategy[Any],
    dates: st.SearchStrategy[float | None],
    dependencies: st.SearchStrategy[list[str]],
    outputs: st.SearchStrategy[list[str]] | None = None,
    options: st.SearchStrategy[dict[str, str]],
    values: Mapping[FieldKind, list[Any]],
) -> st.SearchStrategy[Task]:
    """Random tasks in partition p: `texts` for their creator and host, `payloads`, `dates` (created, started,
    ended), `dependencies`, `outputs` (none when not given), `options` maps; numbers from `values`."""

    def build(
        i: int,
        status: TaskStatus,
        created_by: Any,
        hostname: Any,
        payload: Any,
        created: float | None,
        started: float | None,
        ended: float | None,
        deps: list[str],
        outs: list[str],
        opts: dict[str, str],
        retries: int,
        prio: int,
        mdur: float,
    ) -> Task:
        return task(
            f"t{i}",
            status=status,
            created_by=created_by,
            pod_hostname=hostname,
            payload_id=payload or "",
            created_at=created if created is not None else 0.0,
            started_at=started,
            ended_at=ended,
            data_dependencies=deps,
            expected_output_ids=outs,
            options=TaskOptions(mdur, retries, prio, "p", options=opts),
        )

    return st.builds(
        build,
        st.integers(0, 10**6),
        st.sampled_from(list(TaskStatus)),
        texts,
        texts,
        payloads,
        dates,
        dates,
        dates,
        dependencies,
        outputs if outputs is not None else st.builds(list),
        options,
        st.sampled_from(values[N]),
        st.sampled_from(values[N]),
        st.sampled_from(values[T]),
    )
