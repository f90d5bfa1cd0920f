"""Column updates: the worker sends only what a plugin set, and the rebuilt data is identical."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from elspeth.orchestrator._arrow import frame_to_ipc, ipc_to_table
from elspeth.orchestrator._column_update import (
    MisalignedUpdateError,
    ViewBase,
    columns_to_send,
    with_columns,
)
from elspeth.security import canonical_digest

ORIGINAL = pd.DataFrame(
    {"id": [1, 2, 3], "text": ["a", "b", None], "x": [0.5, float("nan"), 2.0]},
    index=pd.Index([10, 20, 30], name="row"),
)


def arrive(frame: pd.DataFrame) -> tuple[ViewBase, pd.DataFrame]:
    """The view as the worker gets it: through Arrow IPC, with the base it keeps."""
    table = ipc_to_table(frame_to_ipc(frame))
    view = table.to_pandas()
    base = ViewBase.of(1, table, view)
    assert base is not None
    return base, view


def _in_place_edit(view: pd.DataFrame) -> pd.DataFrame:
    view.loc[10, "id"] = 99
    return view.assign(y=1)


PLUGIN_RESULTS: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]] = {
    "appended": (lambda v: v.assign(score=[1.0, 2.0, 3.0]), ["score"]),
    "replaced in place": (lambda v: v.assign(text=v["text"].str.upper()), ["text"]),
    "replaced and appended": (lambda v: v.assign(x=v["x"] * 2, a="k", b=7), ["x", "a", "b"]),
    "same values, new dtype": (lambda v: v.assign(id=v["id"].astype("float64")), ["id"]),
    "view edited in place": (_in_place_edit, ["id", "y"]),
}


@pytest.mark.parametrize("name", PLUGIN_RESULTS)
def test_only_set_columns_are_sent_and_the_rebuilt_frame_is_identical(name: str) -> None:
    plugin, expected = PLUGIN_RESULTS[name]
    base, view = arrive(ORIGINAL)
    result = plugin(view)
    send = columns_to_send(base, result)
    assert send == expected
    # The orchestrator rebuilds from its own frame and the columns after their own IPC trip.
    rebuilt = with_columns(ORIGINAL, ipc_to_table(frame_to_ipc(result[send])).to_pandas())
    assert canonical_digest(rebuilt) == canonical_digest(result)
    assert canonical_digest(ORIGINAL) != canonical_digest(result)


NOT_UPDATES: dict[str, Callable[[pd.DataFrame], Any]] = {
    "unchanged": lambda v: v,
    "column dropped": lambda v: v.drop(columns=["text"]).assign(s=1),
    "columns reordered": lambda v: v[["text", "id", "x"]].assign(s=1),
    "rows filtered": lambda v: v.head(2).assign(s=1),
    "index renamed": lambda v: v.rename_axis("other").assign(s=1),
    "every column replaced": lambda v: v.assign(id=0, text="t", x=0.0),
    "non-string label": lambda v: v.assign(s=1).rename(columns={"s": 5}),
}


@pytest.mark.parametrize("name", NOT_UPDATES)
def test_other_results_are_sent_whole(name: str) -> None:
    base, view = arrive(ORIGINAL)
    assert columns_to_send(base, NOT_UPDATES[name](view)) is None


def test_a_view_with_unusable_labels_has_no_base() -> None:
    frame = pd.DataFrame([[1, 2]], columns=[0, 1])
    table = ipc_to_table(frame_to_ipc(frame))
    assert ViewBase.of(1, table, table.to_pandas()) is None


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        (pd.DataFrame({"s": [1, 2, 3]}), "rows do not match"),
        (pd.DataFrame({"s": [1, 2]}, index=pd.Index([10, 20], name="row")), "rows do not match"),
        (pd.DataFrame([[1, 2, 3]], columns=[0, 1, 2]), "unique string column labels"),
    ],
)
def test_a_misaligned_update_is_refused(update: pd.DataFrame, reason: str) -> None:
    with pytest.raises(MisalignedUpdateError, match=reason):
        with_columns(ORIGINAL, update)
