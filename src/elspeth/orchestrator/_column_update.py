"""``replace_data`` as a column update: send only the columns a plugin set, not the whole frame.

Most row plugins return their view with some columns added or replaced
(``view.data.assign(score=...)``). The worker then sends only those columns and the
orchestrator rebuilds the new data from the frame the view was taken from
(:func:`with_columns`): the same content, without moving the unchanged columns back. Either way
the new data is derived from every frame of the step; only the transport differs.

The worker decides with :func:`columns_to_send`, comparing the plugin's result with the view as
it arrived (the decoded Arrow table, which plugin code cannot modify), so a plugin that changed
its view in place still has the changed columns sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


class MisalignedUpdateError(ValueError):
    """Update columns whose rows or labels do not line up with the frame they update."""


@dataclass(frozen=True, slots=True)
class ViewBase:
    """A view as it arrived: the content a column update may rely on."""

    version: int
    table: pa.Table
    index: pd.Index[Any]
    columns: tuple[str, ...]
    dtypes: Mapping[str, Any]

    @classmethod
    def of(cls, version: int, table: pa.Table, frame: pd.DataFrame) -> ViewBase | None:
        """The base for updates to ``frame`` (decoded from ``table``), or None when its columns
        cannot be updated by label (labels that are not unique strings)."""
        if not _unique_str_labels(frame.columns):
            return None
        return cls(
            version,
            table,
            frame.index,
            tuple(frame.columns),
            {str(label): dtype for label, dtype in frame.dtypes.items()},
        )


def columns_to_send(base: ViewBase, result: pd.DataFrame) -> list[str] | None:
    """The columns of ``result`` that ``with_columns(<the view's frame>, result[...])`` needs to
    rebuild ``result`` exactly; None when ``result`` is not the view with columns set (other
    rows or index, columns dropped or reordered, or nothing kept or nothing set)."""
    labels = list(result.columns)
    if (
        not _unique_str_labels(result.columns)
        or tuple(labels[: len(base.columns)]) != base.columns
        or not _same_index(result.index, base.index)
    ):
        return None
    kept = {label for label in base.columns if _unchanged(base, label, result[label])}
    send = [label for label in labels if label not in kept]
    return send if kept and send else None


def with_columns(base: pd.DataFrame, columns: pd.DataFrame) -> pd.DataFrame:
    """``base`` with every column of ``columns`` set: replaced where the label exists, appended
    (in order) where it does not. Raises :class:`MisalignedUpdateError` unless both have unique
    string labels and the same index."""
    if not (_unique_str_labels(base.columns) and _unique_str_labels(columns.columns)):
        raise MisalignedUpdateError("column updates need unique string column labels")
    if not _same_index(columns.index, base.index):
        raise MisalignedUpdateError("the update's rows do not match the frame's index")
    updated = base.copy(deep=False)
    for label in columns.columns:
        updated[label] = columns[label]
    return updated


def _unchanged(base: ViewBase, label: str, column: pd.Series[Any]) -> bool:
    import pyarrow as pa

    if (
        column.dtype != base.dtypes[label]
        or len(base.table.schema.get_all_field_indices(label)) != 1
    ):
        return False
    try:
        array = pa.Array.from_pandas(column)
    except (pa.ArrowException, ValueError, TypeError):
        return False
    arrived = base.table.column(label)
    if isinstance(array, pa.Array):
        array = pa.chunked_array([array], type=array.type)
    return bool(array.type == arrived.type and arrived.equals(array))


def _same_index(left: pd.Index[Any], right: pd.Index[Any]) -> bool:
    return (
        type(left) is type(right)
        and left.dtype == right.dtype
        and list(left.names) == list(right.names)
        and left.equals(right)
    )


def _unique_str_labels(labels: pd.Index[Any]) -> bool:
    return bool(labels.is_unique) and all(isinstance(label, str) for label in labels)
