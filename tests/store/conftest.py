"""The store contract suite: every test in tests/store/ runs once per store implementation listed here.

A test talks to the store only through `crmrules.store.Store` (core/store/protocols.py), never through SQL, so
the same tests hold any implementation to the same behaviour. A factory takes the test's own folder and
returns an open store; called again with the same folder it must open that same store (tests that reopen a
store, or open a second one beside it as another process would, rely on it). The fixture closes whatever
was opened.

A new implementation plugs in by adding its factory to `FACTORIES`; PostgreSQL has its place reserved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from crmrules.store import SQLiteStore, Store, open_store

StoreFactory = Callable[[Path], Store]

SEALING_KEY = "contract suite passphrase 비밀번호"


def sqlite_plain(folder: Path) -> Store:
    return SQLiteStore(folder / "store.sqlite")


def sqlite_sealed(folder: Path) -> Store:
    """At-rest encryption on (CRMRULES_STORE_KEY): payloads sealed, identity values blinded; same contract."""

    return SQLiteStore(folder / "store.sqlite", key=SEALING_KEY)


POSTGRES_URL = os.environ.get("CRMRULES_TEST_POSTGRES_URL")


def postgres(folder: Path) -> Store:
    """Where the PostgreSQL store plugs in (not implemented yet: `open_store` raises NotImplementedError).

    It must hand each test an empty store of its own, and the same one again for the same `folder`: e.g. a
    schema named after `folder.name`, created on first use and dropped by the implementation's test helper.
    """

    assert POSTGRES_URL is not None
    return open_store(POSTGRES_URL)


FACTORIES = [
    pytest.param(sqlite_plain, id="sqlite"),
    pytest.param(sqlite_sealed, id="sqlite-sealed"),
    # Only with CRMRULES_TEST_POSTGRES_URL set (a database the suite may create schemas in), so that a run
    # without it lists no skipped test per contract test.
    *([pytest.param(postgres, id="postgres")] if POSTGRES_URL else []),
]


@pytest.fixture(params=FACTORIES)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens the test's store; each call is another instance on the same data (another process, a restart)."""

    factory: StoreFactory = request.param
    opened: list[Store] = []

    def open_one() -> Store:
        store = factory(tmp_path)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture()
def store(opener: Callable[[], Store]) -> Store:
    return opener()
