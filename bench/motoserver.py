"""moto's server for the benchmarks: `python -m bench.motoserver -H 127.0.0.1 -p PORT` (moto's own
options), with ListObjectsV2 pages served from a sorted index of the bucket's keys.

moto answers each ListObjectsV2 page by walking and sorting every key of the bucket: about a second
a page at 100,000 keys on two cores, so listing 100,000 objects takes minutes where S3 takes
seconds, and a worker with a 60 s timeout never gets past looking its objects up. A benchmark of
the service must not measure that. The index gives moto's own answers (the same keys in the same
order, truncation, continuation tokens): it is built the way moto lists, and built again after any
write to the bucket (a write bumps the key store's generation), so only pages between writes are
cheap. Listings with a delimiter, unknown continuation tokens and table buckets go to moto's code.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Callable
from typing import Any

from moto.s3 import models, utils

_Store = utils._VersionedKeyStore
_MUTATORS = ("__setitem__", "__delitem__", "pop", "popitem", "setlist", "setdefault", "update", "clear")
_moto_list_objects_v2 = models.S3Backend.list_objects_v2
# (id of the key store, prefix) -> (the store, its generation when built, sorted names listed)
_index: dict[tuple[int, str], tuple[Any, int, list[str]]] = {}


def _counting(method: Callable[..., Any]) -> Callable[..., Any]:
    def mutate(self: Any, *args: Any, **kwargs: Any) -> Any:
        self.__dict__["generation"] = self.__dict__.get("generation", 0) + 1
        return method(self, *args, **kwargs)

    return mutate


def _names(store: Any, prefix: str) -> list[str]:
    """What moto's `list_objects` lists without a delimiter: keys under the prefix whose latest
    version is not a delete marker, sorted by name."""
    generation = store.__dict__.get("generation", 0)  # read first: a write while building rebuilds next time
    cached = _index.get((id(store), prefix))
    if cached is not None and cached[0] is store and cached[1] == generation:
        return cached[2]
    names = sorted(
        name for name, key in store.items() if name.startswith(prefix) and not isinstance(key, models.FakeDeleteMarker)
    )
    _index[(id(store), prefix)] = (store, generation, names)
    return names


def list_objects_v2(
    self: Any,
    bucket: Any,
    prefix: str | None,
    delimiter: str | None,
    continuation_token: str | None,
    start_after: str | None,
    max_keys: int,
) -> Any:
    after = self._pagination_tokens.get(continuation_token) if continuation_token else start_after
    if delimiter or isinstance(bucket, models.FakeTableStorageBucket) or (continuation_token and after is None):
        return _moto_list_objects_v2(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
    store = bucket.keys
    names = _names(store, prefix or "")
    start = bisect.bisect_right(names, after) if after else 0
    page = [store[name] for name in names[start : start + max_keys + 1]]
    return self._truncate_result(page, max_keys)


def install() -> None:
    for name in _MUTATORS:
        setattr(_Store, name, _counting(getattr(_Store, name)))
    models.S3Backend.list_objects_v2 = list_objects_v2  # type: ignore[method-assign]


def main() -> int:
    install()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
