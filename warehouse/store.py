"""Engines, schema creation and the one way rows are written: atomically, replacing what they cover.

`write_partition` deletes a partition's rows and inserts the new ones in one transaction, so a
re-run replaces rather than duplicates and a crash leaves the previous rows in place.
`replace_newer` does the same for keyed rows that carry a version (as_of_date).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    MetaData,
    Table,
    and_,
    create_engine,
    delete,
    event,
    exists,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import Connection

from warehouse.schema import CURRENT_BY, SERVING_VIEWS, metadata

_CHUNK = 500  # keys per IN (...) list: well under SQLite's bound-parameter limit


def make_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL; SQLite gets WAL and a busy timeout for readers."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            # A generation of picks is gigabytes in one transaction: give the WAL file back
            # after each checkpoint rather than keep it at its largest.
            cur.execute("PRAGMA journal_size_limit=67108864")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create every table and view that does not exist yet (idempotent)."""
    metadata.create_all(engine)
    views = {
        f"{name}_current": _latest_export_view(name, keys) for name, keys in CURRENT_BY.items()
    }
    views.update(
        {name: _latest_stamp_view(base, stamp) for name, (base, stamp) in SERVING_VIEWS.items()}
    )
    with engine.begin() as conn:
        for name, body in views.items():
            if engine.dialect.name == "sqlite":
                conn.execute(text(f"CREATE VIEW IF NOT EXISTS {name} AS {body}"))
            else:
                conn.execute(text(f"CREATE OR REPLACE VIEW {name} AS {body}"))


def _latest_export_view(table: str, keys: Sequence[str]) -> str:
    same_key = " AND ".join(f"n.{k} = t.{k}" for k in keys)
    return (
        f"SELECT t.* FROM {table} t WHERE NOT EXISTS "
        f"(SELECT 1 FROM {table} n WHERE {same_key} AND n.export_date > t.export_date)"
    )


def _latest_stamp_view(table: str, stamp: str) -> str:
    # One pass over the key (plan_id, stamp, ...), not a MAX per row: a generation of picks is
    # millions of rows.
    return (
        f"SELECT t.* FROM {table} t JOIN (SELECT plan_id, MAX({stamp}) AS latest FROM {table} "
        f"GROUP BY plan_id) m ON m.plan_id = t.plan_id AND t.{stamp} = m.latest"
    )


_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's own SQLite storage format


def _column_values(series: pd.Series, column_type: object, sqlite: bool) -> list[object]:
    """One column as plain Python values the driver takes, None for missing (vectorised)."""
    present = series.notna().to_numpy()
    if isinstance(column_type, DateTime):
        stamps = pd.to_datetime(series)
        values = (
            stamps.dt.strftime(_SQLITE_DATETIME)
            if sqlite
            else pd.Series(stamps.dt.to_pydatetime(), dtype=object)
        )
    elif isinstance(column_type, Date):
        days = pd.to_datetime(series).dt.date
        values = days.astype(str) if sqlite else days
    elif isinstance(column_type, Boolean):
        values = series.astype(bool).astype(int) if sqlite else series.astype(bool)
    else:
        values = series
    out = values.astype(object).to_numpy(copy=True)
    out[~present] = None
    return out.tolist()


def _insert(conn: Connection, table: Table, df: pd.DataFrame) -> None:
    """Insert through the database's bulk path: COPY on PostgreSQL (psycopg's `Cursor.copy`),
    the driver's executemany on SQLite; the Core per-row machinery costs more than the database
    does for hundreds of thousands of rows. Both run inside `conn`'s transaction."""
    if not len(df):
        return
    required = [
        c.name
        for c in table.columns
        if not c.nullable and c.server_default is None and c.name not in df.columns
    ]
    if required:
        raise ValueError(f"{table.name}: rows lack required column(s) {required}")
    names = [c.name for c in table.columns if c.name in df.columns]
    sqlite = conn.dialect.name == "sqlite"
    columns = [_column_values(df[n], table.c[n].type, sqlite) for n in names]
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(n) for n in names)
    rows = zip(*columns, strict=True)
    if conn.dialect.name == "postgresql":
        with (
            conn.connection.dbapi_connection.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join([marker] * len(names))})"
    conn.exec_driver_sql(sql, list(rows))


def _lock(conn: Connection, table: Table) -> None:
    """Serialize writers of one table for the rest of the transaction. SQLite's database lock
    already does; on PostgreSQL two concurrent delete+insert of the same rows could otherwise
    interleave under READ COMMITTED."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": table.name})


def write_partition(
    engine: Engine,
    table: Table,
    df: pd.DataFrame,
    partition_column: str,
    partitions: Iterable[object],
    conn: Connection | None = None,
    scope: dict[str, object] | None = None,
) -> int:
    """Replace every row of `partitions` (values of `partition_column`) by `df`, atomically.

    `scope` narrows what is replaced to rows with those column values (a shared table such as
    the quarantine, written per source table); a list or tuple value means any of them (the
    platforms whose data is being published). Pass `conn` to make the write part of a larger
    transaction (several tables published together); otherwise it is its own transaction.
    """
    values = sorted(set(partitions))
    if len(df):
        outside = set(df[partition_column].unique()) - set(values)
        if outside:
            raise ValueError(
                f"{table.name}: rows outside the partitions being written: {sorted(outside)[:5]}"
            )
    if conn is None:
        with engine.begin() as own:
            return write_partition(engine, table, df, partition_column, values, own, scope)
    _lock(conn, table)
    column = table.c[partition_column]
    narrow = [_in_scope(table.c[name], value) for name, value in (scope or {}).items()]
    for name, value in (scope or {}).items():
        allowed = list(value) if isinstance(value, list | tuple) else [value]
        if len(df) and not df[name].isin(allowed).all():
            raise ValueError(f"{table.name}: rows outside the scope {name}={value!r}")
    for i in range(0, len(values), _CHUNK):
        conn.execute(delete(table).where(column.in_(values[i : i + _CHUNK]), *narrow))
    _insert(conn, table, df)
    return len(df)


def _in_scope(column, value):
    return column.in_(list(value)) if isinstance(value, list | tuple) else column == value


def write_partition_chunks(
    engine: Engine,
    table: Table,
    chunks: Iterable[pd.DataFrame],
    partition_column: str,
    partitions: Iterable[object],
    prune_before: object | None = None,
    scope: dict[str, object] | None = None,
) -> tuple[int, int]:
    """`write_partition` for rows made in chunks (bounded memory): in one transaction the
    partitions (narrowed by `scope`, as in `write_partition`) are emptied, then each chunk is
    inserted as it comes; readers see the old rows until every chunk is in, and nothing of a
    write that fails half way. `prune_before`: in the same transaction, rows whose partition
    value is older go (a retention window). Returns the rows written and the rows pruned."""
    values = sorted(set(partitions))
    written = pruned = 0
    with engine.begin() as conn:
        write_partition(engine, table, pd.DataFrame(), partition_column, values, conn, scope)
        if prune_before is not None:
            old = delete(table).where(table.c[partition_column] < prune_before)
            pruned = conn.execute(old).rowcount
        for chunk in chunks:
            outside = set(chunk[partition_column].unique()) - set(values) if len(chunk) else set()
            if outside:
                raise ValueError(f"{table.name}: rows outside the partitions being written")
            _insert(conn, table, chunk)
            written += len(chunk)
    return written, pruned


def replace_newer(
    engine: Engine,
    table: Table,
    df: pd.DataFrame,
    key_columns: Sequence[str],
    version_column: str,
    restated: pd.DataFrame | None = None,
) -> int:
    """Replace the rows of each key (one row or a group of rows) by the incoming ones, atomically,
    unless the warehouse already holds that key at a newer version.

    `restated` (key columns and `version_column`, one row per key) names the keys recomputed and
    their version, including keys no incoming row has: their old rows are removed (a date with
    no bot left, a session that turned out to be a test). Every row of `df` must have its key
    among them. Without it, the keys are those of `df`, each at its rows' latest version.

    Used where rows are restated as data arrives (session_scorecard, a session's viewer
    activity): re-running an old partition must not roll them back to what was known then.
    The incoming keys go to a temporary table first, so that finding the newer keys and
    deleting the replaced rows are two joins however many keys there are (millions of
    viewer-sessions on a busy night). The table's primary key should lead with `key_columns`.
    Returns the rows inserted.
    """
    key_columns = list(key_columns)
    if restated is None:
        incoming = df.groupby(key_columns, as_index=False)[version_column].max()
    else:
        incoming = restated[[*key_columns, version_column]]
    if incoming.empty:
        return 0
    stage = Table(
        f"incoming_{table.name}",
        MetaData(),
        *(Column(name, table.c[name].type, primary_key=True) for name in key_columns),
        Column(version_column, table.c[version_column].type, nullable=False),
        prefixes=["TEMPORARY"],
    )
    stage_key = [stage.c[k] for k in key_columns]
    same_key = [table.c[k] == stage.c[k] for k in key_columns]
    is_newer = table.c[version_column] > stage.c[version_column]
    with engine.begin() as conn:
        _lock(conn, table)
        stage.create(conn)
        _insert(conn, stage, incoming)
        newer = conn.execute(
            select(*stage_key).join(table, and_(*same_key)).where(is_newer).distinct()
        ).all()
        if newer:
            keep = pd.DataFrame(newer, columns=key_columns).astype(df[key_columns].dtypes)
            kept = df.merge(keep, on=key_columns, how="left", indicator=True)["_merge"]
            df = df[kept.to_numpy() == "left_only"]
            conn.execute(delete(stage).where(exists().where(*same_key, is_newer)))
        table_key = tuple_(*(table.c[k] for k in key_columns))
        conn.execute(delete(table).where(table_key.in_(select(*stage_key))))
        _insert(conn, table, df)
        stage.drop(conn)
    return len(df)


_HEX = "0123456789abcdef"


def hex_prefix(column: str, prefix: str, name: str = "prefix") -> tuple[str, dict[str, str]]:
    """The SQL condition "`column` starts with `prefix`" for lowercase hex keys (viewer_key), as
    the half-open range `prefix` <= `column` < the next prefix, with its bound parameters
    (`:<name>_from`, `:<name>_to`). An index on `column`, or a key that ends with it, can seek
    a range; SQLite's `LIKE 'p%'` scans. Raises ValueError for a prefix that is not hex."""
    if not prefix or any(c not in _HEX for c in prefix):
        raise ValueError(f"not a hex prefix: {prefix!r}")
    following = prefix[:-1] + (_HEX + "g")[_HEX.index(prefix[-1]) + 1]
    condition = f"{column} >= :{name}_from AND {column} < :{name}_to"
    return condition, {f"{name}_from": prefix, f"{name}_to": following}


def read_frame(engine: Engine, query, params: dict | None = None) -> pd.DataFrame:
    """Run a SELECT (text or Core) and return a DataFrame.

    On SQLite, timestamp parameters are bound as text in the format the timestamps are stored
    in (`_SQLITE_DATETIME`), so `=`, `BETWEEN` and `<` compare like with like (the driver's own
    format drops the microseconds and misses a stamp equal to a bound)."""
    if params and engine.dialect.name == "sqlite":
        params = {
            k: v.strftime(_SQLITE_DATETIME) if isinstance(v, dt.datetime) else v
            for k, v in params.items()
        }
    with engine.connect() as conn:
        if isinstance(query, str):
            query = text(query)
        return pd.read_sql(query, conn, params=params)


def read_dates(
    engine: Engine, table: str, first: dt.date, last: dt.date, columns: Sequence[str] = ()
) -> pd.DataFrame:
    """The rows of `table` dated `first` … `last` (local dates, inclusive) by its partition
    column: `export_date` for the clean exports, `as_of_date` for tables restated as of a date.
    `columns` narrows the columns read (all by default). Raises KeyError for an unknown table."""
    source = metadata.tables[table]
    date = source.c["export_date" if "export_date" in source.c else "as_of_date"]
    chosen = [source.c[name] for name in columns] if columns else [source]
    return read_frame(engine, select(*chosen).where(date.between(first, last)))


def read_where_in(
    engine: Engine, table_or_view: str, column: str, values: Iterable[object]
) -> pd.DataFrame:
    """Rows of a table or view whose `column` is in `values`, fetched in chunks."""
    values = sorted(set(values))
    frames = []
    for i in range(0, len(values), _CHUNK):
        chunk = values[i : i + _CHUNK]
        names = ", ".join(f":v{j}" for j in range(len(chunk)))
        frames.append(
            read_frame(
                engine,
                f"SELECT * FROM {table_or_view} WHERE {column} IN ({names})",
                {f"v{j}": v for j, v in enumerate(chunk)},
            )
        )
    if not frames:
        return read_frame(engine, f"SELECT * FROM {table_or_view} WHERE 1 = 0")
    return pd.concat(frames, ignore_index=True)


def first_export_dates(
    engine: Engine, table: str, column: str, values: Iterable[object]
) -> pd.Series:
    """For each value of `column`, the first export date that carried it (what was known when)."""
    found = read_where_in(engine, table, column, values)
    if found.empty:
        return pd.Series(dtype="object")
    dates = pd.to_datetime(found["export_date"])
    return found.assign(export_date=dates).groupby(column)["export_date"].min()
