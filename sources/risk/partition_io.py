"""Where the partitioned risk layer's points come from: Parquet files of ``x, y, cat, ent``
(read on the workers), and the console's own store exported to them in batches."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from sources.risk.partition_tasks import Arrays, Chunk, PartitionedLayerError


def read_parquet_points(path: str) -> Arrays:
    """One Parquet file's points: columns ``x``, ``y`` (float), ``cat`` (0..3), ``ent``."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["x", "y", "cat", "ent"])
    return tuple(table.column(c).to_numpy() for c in ("x", "y", "cat", "ent"))


def parquet_chunks(paths) -> list[Chunk]:
    """One chunk per Parquet file (a directory: its ``*.parquet``, in name order). The
    workers open the files: give paths they can read (a shared or copied directory)."""
    if isinstance(paths, str | Path) and Path(paths).is_dir():
        paths = sorted(Path(paths).glob("*.parquet"))
    return [partial(read_parquet_points, str(p)) for p in paths]


_ENTERPRISES_SQL = (
    "SELECT e.enterprise_id, e.industry, e.size, e.county_code, c.city_code "
    "FROM enterprises e LEFT JOIN counties c USING (county_code) ORDER BY e.enterprise_id")


def export_points(source, directory, *, rows_per_file: int = 4_000_000) -> list[Path]:
    """Write a :class:`~sources.risk.risk.RiskSource`'s points as Parquet files of ``x, y,
    cat, ent`` (``ent``: row of the enterprise by id, as ``RiskSource.load_layer``),
    streamed in batches: this process never holds them all."""
    import pyarrow.parquet as pq

    from sources.risk.risk import _GRADE_CASE

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("points-*.parquet"):
        old.unlink()
    sql = ("WITH ei AS (SELECT enterprise_id, (row_number() OVER (ORDER BY enterprise_id) - 1)"
           " AS idx FROM enterprises) "
           "SELECT p.lon::FLOAT AS x, p.lat::FLOAT AS y, "
           f"{_GRADE_CASE.format(col='p.risk_level')}::UTINYINT AS cat, ei.idx::INTEGER AS ent "
           "FROM risk_points p JOIN ei USING (enterprise_id)")
    paths: list[Path] = []
    writer, rows = None, 0
    cur = source.store.cursor()
    try:
        for batch in cur.sql(sql).to_arrow_reader(min(rows_per_file, 1 << 20)):
            if writer is None or rows >= rows_per_file:
                if writer is not None:
                    writer.close()
                paths.append(directory / f"points-{len(paths):05d}.parquet")
                writer, rows = pq.ParquetWriter(paths[-1], batch.schema), 0
            writer.write_batch(batch)
            rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
        cur.close()
    return paths


def load_partitioned_layer(source, directory, **build):
    """A :class:`~sources.risk.risk.RiskLayer` whose points live on Dask workers: the
    source's points exported to ``directory`` (:func:`export_points`), read there by the
    workers; enterprises (for filters) stay here. ``build``: :meth:`PartitionedPointLayer.build`
    arguments (``scheduler=``, ``partition_points=``...)."""
    from sources.risk.risk import RiskLayer

    ents = source.store.df(_ENTERPRISES_SQL)
    for c in ("industry", "size", "county_code", "city_code"):
        ents[c] = ents[c].astype("category")
    paths = export_points(source, directory)
    if not paths:
        raise PartitionedLayerError("the store holds no risk points to partition")
    build.setdefault("extent", source.extent())
    from sources.risk.partitioned import PartitionedPointLayer

    points = PartitionedPointLayer.build(parquet_chunks(paths),
                                         enterprise_ids=ents["enterprise_id"].to_numpy(np.int64),
                                         **build)
    return RiskLayer(points=points, enterprises=ents)
