"""The MongoDB collections as one unit of work of the state store sees them (`_Db`).

Every read and write of the units of work goes through `_Db`, bound to the unit's transaction when there is
one: the units' code is the same with and without transactions (see `mongodb`'s docstring)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymongo import ReturnDocument, UpdateMany
from pymongo.client_session import ClientSession
from pymongo.collection import Collection as MongoCollection
from pymongo.errors import BulkWriteError

Document = dict[str, Any]
Query = dict[str, Any]

#: Ids per `$in` lookup: keeps every query far below MongoDB's 16 MiB command size.
CHUNK = 10_000
DUPLICATE_KEY = 11000
#: Results are read without the ids of the tasks that waited on them, which only the graph rules need.
_RESULT_PROJECTION = {"DependentTasks": 0}


class _Db:
    """The collections as one unit of work sees them: bound to its transaction's session when there is one.

    Bulk updates are `UpdateMany` on a unique `_id`, which is `UpdateOne`: mongomock (the test stand-in)
    cannot take pymongo 4.9's `UpdateOne` in `bulk_write`."""

    def __init__(
        self,
        collections: Mapping[str, MongoCollection[Document]],
        session: ClientSession | None,
        outbox: bool,
    ) -> None:
        self._c = collections
        self._s = session
        self.outbox = outbox

    @property
    def in_transaction(self) -> bool:
        return self._s is not None

    def find(
        self,
        name: str,
        query: Query,
        projection: Mapping[str, Any] | None = None,
        sort: list[tuple[str, int]] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> list[Document]:
        cursor = self._c[name].find(query, projection, session=self._s)
        if sort:
            cursor = cursor.sort(sort)
        if skip:
            cursor = cursor.skip(skip)
        if limit:
            cursor = cursor.limit(limit)
        return list(cursor)

    def find_ids(
        self, name: str, ids: Iterable[str], projection: Mapping[str, Any] | None = None, **extra: Any
    ) -> list[Document]:
        return self.find_in(name, "_id", ids, projection, **extra)

    def find_in(
        self,
        name: str,
        path: str,
        values: Iterable[str],
        projection: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> list[Document]:
        """Documents whose `path` is one of `values`, looked up `CHUNK` values at a time."""
        unique = list(dict.fromkeys(values))
        found: list[Document] = []
        for start in range(0, len(unique), CHUNK):
            found += self.find(name, {path: {"$in": unique[start : start + CHUNK]}, **extra}, projection)
        return found

    def find_one(
        self, name: str, query: Query, projection: Mapping[str, Any] | None = None
    ) -> Document | None:
        return self._c[name].find_one(query, projection, session=self._s)

    def count(self, name: str, query: Query) -> int:
        return self._c[name].count_documents(query, session=self._s)

    def aggregate(self, name: str, pipeline: list[Document]) -> list[Document]:
        return list(self._c[name].aggregate(pipeline, session=self._s))

    def insert(self, name: str, documents: list[Document]) -> set[str]:
        """Insert what is not there yet (unordered); returns the ids that were already taken."""
        if not documents:
            return set()
        try:
            self._c[name].insert_many(documents, ordered=False, session=self._s)
        except BulkWriteError as error:
            details = error.details
            failures = details.get("writeErrors", [])
            if details.get("writeConcernErrors") or any(f.get("code") != DUPLICATE_KEY for f in failures):
                raise
            return {documents[f["index"]]["_id"] for f in failures}
        return set()

    def update(self, name: str, query: Query, update: Document, upsert: bool = False) -> int:
        """`update_many`; returns how many documents matched."""
        return self._c[name].update_many(query, update, upsert=upsert, session=self._s).matched_count

    def update_each(self, name: str, updates: Sequence[tuple[Query, Document]], upsert: bool = False) -> int:
        """One round trip for many single-document updates; returns how many matched."""
        if not updates:
            return 0
        requests = [UpdateMany(query, update, upsert=upsert) for query, update in updates]
        result = self._c[name].bulk_write(requests, ordered=False, session=self._s)
        return result.matched_count + result.upserted_count

    def swap(
        self, name: str, query: Query, update: Document, projection: Mapping[str, Any] | None = None
    ) -> Document | None:
        """Compare-and-set one document: the document as updated, or None when nothing matched."""
        return self._c[name].find_one_and_update(
            query, update, projection, return_document=ReturnDocument.AFTER, session=self._s
        )

    def delete(self, name: str, query: Query) -> int:
        return self._c[name].delete_many(query, session=self._s).deleted_count
