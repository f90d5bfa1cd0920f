"""Datasources through the real standalone daemon: happy paths and every bad-input message."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import TypeAdapter, ValidationError

from elspeth.datasources import (
    ColumnType,
    CsvDatasourceConfig,
    DatasourceAccessError,
    DatasourceConfig,
    DatasourceEncodingError,
    DatasourceError,
    DatasourceFormatError,
    DatasourceNotFoundError,
    DatasourceQueryError,
    DatasourceSchemaError,
    JsonlDatasourceConfig,
    MarkingError,
    ParquetDatasourceConfig,
    SqlDatasourceConfig,
    UnsupportedSourceError,
    file_datasource_config,
    open_datasource,
)
from elspeth.datasources._sql import scrub
from elspeth.errors import ConfigurationError
from elspeth.security import SecurityError, SecurityLevel
from elspeth.sidecar import SidecarClient

pytestmark = pytest.mark.integration

L = SecurityLevel
LEVELS = {"classification": "OFFICIAL", "clearance": "OFFICIAL_SENSITIVE"}
PEOPLE = {"id": ColumnType.INTEGER, "name": ColumnType.STRING, "score": ColumnType.FLOAT}


def csv_source(path: Path, **options: Any) -> CsvDatasourceConfig:
    return CsvDatasourceConfig(path=path, **{**LEVELS, **options})


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def load_error(config: Any, authority: SidecarClient, error: type[DatasourceError]) -> str:
    """The message of the ``error`` (exactly that class, not a subclass) that loading raises."""
    with pytest.raises(error) as caught:
        open_datasource(config).load(authority)
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    return str(caught.value)


# --- happy paths ---------------------------------------------------------------------------


def test_csv_with_banner_declared_types_and_multiline_cell(
    tmp_path: Path, authority: SidecarClient
) -> None:
    path = write(
        tmp_path / "people.csv",
        '# classification: OFFICIAL\nid,name,score\n1,Ann,0.5\n2,"Bob\nSmith",\n\n3,Cy,1e3\n',
    )
    frame = open_datasource(csv_source(path, columns=PEOPLE)).load(authority)
    assert frame.security_level is L.OFFICIAL
    assert frame.verify_seal() > 0
    data = frame.data
    assert list(data.columns) == ["id", "name", "score"]
    assert data["id"].tolist() == [1, 2, 3]
    assert str(data["id"].dtype) == "Int64"
    assert data["name"].tolist() == ["Ann", "Bob\nSmith", "Cy"]
    assert data["score"].iloc[0] == 0.5
    assert pd.isna(data["score"].iloc[1])
    assert data["score"].iloc[2] == 1000.0


def test_csv_without_declared_columns_keeps_text(tmp_path: Path, authority: SidecarClient) -> None:
    path = write(tmp_path / "codes.csv", "zip;code\n007;=A\n")
    frame = open_datasource(csv_source(path, delimiter=";")).load(authority)
    assert frame.data.to_dict("records") == [{"zip": "007", "code": "=A"}]


def test_csv_in_chunks_continues_the_row_index(tmp_path: Path, authority: SidecarClient) -> None:
    rows = "".join(f"{n},n{n},{n / 2}\n" for n in range(7))
    path = write(tmp_path / "many.csv", "id,name,score\n" + rows)
    chunks = list(open_datasource(csv_source(path, columns=PEOPLE)).load_chunks(authority, 3))
    assert [chunk.shape[0] for chunk in chunks] == [3, 3, 1]
    assert [chunk.data.index[0] for chunk in chunks] == [0, 3, 6]
    assert len({chunk.frame_id for chunk in chunks}) == 3
    assert all(chunk.security_level is L.OFFICIAL for chunk in chunks)
    assert pd.concat([chunk.data for chunk in chunks])["id"].tolist() == list(range(7))


def test_jsonl_happy_path_with_declared_types(tmp_path: Path, authority: SidecarClient) -> None:
    path = write(
        tmp_path / "people.jsonl",
        '{"id": 1, "name": "Ann", "score": 0.5}\n\n{"id": 2, "name": "Bob", "score": null}\n',
    )
    config = JsonlDatasourceConfig(path=path, columns=PEOPLE, **LEVELS)
    data = open_datasource(config).load(authority).data
    assert data["id"].tolist() == [1, 2]
    assert data["name"].tolist() == ["Ann", "Bob"]
    assert pd.isna(data["score"].iloc[1])


def test_parquet_whole_and_in_chunks(tmp_path: Path, authority: SidecarClient) -> None:
    source = pd.DataFrame({"id": range(5), "text": list("abcde")})
    pq.write_table(pa.Table.from_pandas(source), tmp_path / "rows.parquet")
    datasource = open_datasource(ParquetDatasourceConfig(path=tmp_path / "rows.parquet", **LEVELS))
    pd.testing.assert_frame_equal(datasource.load(authority).data, source)
    chunks = list(datasource.load_chunks(authority, 2))
    assert [chunk.data.index.tolist() for chunk in chunks] == [[0, 1], [2, 3], [4]]
    assert pd.concat([chunk.data for chunk in chunks])["text"].tolist() == list("abcde")


def _sqlite(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        connection.execute("create table people (id integer, name text, score real)")
        connection.executemany(
            "insert into people values (?, ?, ?)", [(1, "Ann", 0.5), (2, "Bob", None), (3, "Cy", 2)]
        )
    return f"sqlite:///{path}"


def test_sql_query_table_and_chunks_from_a_sqlite_file(
    tmp_path: Path, authority: SidecarClient
) -> None:
    url = _sqlite(tmp_path / "people.db")
    by_query = SqlDatasourceConfig(
        url=url,
        query="select id, name, score from people where id >= :low order by id",
        parameters={"low": 2},
        columns=PEOPLE,
        **LEVELS,
    )
    data = open_datasource(by_query).load(authority).data
    assert data["id"].tolist() == [2, 3]
    assert data["score"].iloc[1] == 2.0
    by_table = SqlDatasourceConfig(url=url, table="people", **LEVELS)
    assert open_datasource(by_table).load(authority).shape == (3, 3)
    chunks = list(open_datasource(by_table).load_chunks(authority, 2))
    assert [chunk.data.index.tolist() for chunk in chunks] == [[0, 1], [2]]


def test_file_type_is_chosen_by_suffix(tmp_path: Path) -> None:
    config = file_datasource_config(tmp_path / "x.ndjson", **LEVELS)
    assert isinstance(config, JsonlDatasourceConfig)
    adapter: TypeAdapter[Any] = TypeAdapter(DatasourceConfig)
    parsed = adapter.validate_python({"type": "csv", "path": "x.csv", **LEVELS})
    assert isinstance(parsed, CsvDatasourceConfig)
    assert parsed.component_spec("input").classification is L.OFFICIAL


# --- configuration errors ------------------------------------------------------------------


def test_classification_is_required_and_parsed(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="classification"):
        CsvDatasourceConfig(path=tmp_path / "a.csv", clearance="OFFICIAL")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="unknown security level 'top secretish'"):
        CsvDatasourceConfig(path=tmp_path / "a.csv", classification="top secretish", clearance="x")
    with pytest.raises(ValidationError, match="unknown text encoding 'klingon'"):
        csv_source(tmp_path / "a.csv", encoding="klingon")
    with pytest.raises(ValidationError, match="exactly one of 'query' or 'table'"):
        SqlDatasourceConfig(url="sqlite://", **LEVELS)


def test_unsupported_file_type(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSourceError) as caught:
        file_datasource_config(tmp_path / "book.xlsx", **LEVELS)
    assert isinstance(caught.value, ConfigurationError)
    assert str(caught.value) == (
        f"{tmp_path / 'book.xlsx'}: unsupported file type '.xlsx'; "
        "supported: .csv, .jsonl, .ndjson, .parquet, .pq"
    )


# --- file errors ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path, authority: SidecarClient) -> None:
    config = csv_source(tmp_path / "absent.csv")
    with pytest.raises(DatasourceNotFoundError) as caught:
        open_datasource(config).preflight()
    assert isinstance(caught.value, ConfigurationError)
    assert str(caught.value) == f"{tmp_path / 'absent.csv'}: no such file; check 'path'"
    assert load_error(config, authority, DatasourceNotFoundError) == str(caught.value)


def test_directory_instead_of_file(tmp_path: Path, authority: SidecarClient) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DatasourceAccessError) as caught:
        open_datasource(csv_source(tmp_path / "dir.csv")).load(authority)
    assert str(caught.value) == f"{tmp_path / 'dir.csv'}: is a directory, not a file"


def test_unreadable_file_names_the_permission_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.csv", "a\n1\n")
    path.chmod(0o000)
    probe = (
        "import sys\n"
        "from elspeth.datasources import CsvDatasourceConfig, DatasourceAccessError, "
        "open_datasource\n"
        "config = CsvDatasourceConfig(path=sys.argv[1], classification='OFFICIAL', "
        "clearance='OFFICIAL')\n"
        "try:\n    open_datasource(config).preflight()\n"
        "except DatasourceAccessError as error:\n    print(error)\n"
    )
    command = [sys.executable, "-c", probe, str(path)]
    if os.geteuid() == 0:
        # Root reads anything through CAP_DAC_OVERRIDE; drop it so the kernel really refuses.
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{path}: permission denied: user id {os.geteuid()} may not read this file"
    )


def test_empty_file(tmp_path: Path, authority: SidecarClient) -> None:
    message = load_error(
        csv_source(write(tmp_path / "empty.csv", "")), authority, DatasourceFormatError
    )
    assert message == f"{tmp_path / 'empty.csv'}: is empty (0 bytes)"


def test_header_without_rows(tmp_path: Path, authority: SidecarClient) -> None:
    message = load_error(
        csv_source(write(tmp_path / "h.csv", "a,b\n")), authority, DatasourceFormatError
    )
    assert message == f"{tmp_path / 'h.csv'}: has a header (line 1) but no data rows"


def test_banner_without_header(tmp_path: Path, authority: SidecarClient) -> None:
    path = write(tmp_path / "b.csv", "# classification: OFFICIAL\n")
    assert (
        load_error(csv_source(path), authority, DatasourceFormatError)
        == f"{path}: has no header line"
    )


def test_wrong_encoding_names_encoding_offset_and_line(
    tmp_path: Path, authority: SidecarClient
) -> None:
    path = write(tmp_path / "latin.csv", "name,city\nAnn,Paris\nZo\xeb,Li\xe8ge\n".encode("cp1252"))
    with pytest.raises(DatasourceEncodingError) as caught:
        open_datasource(csv_source(path)).load(authority)
    assert str(caught.value) == (
        f"{path}: is not valid utf-8: undecodable byte at offset 22 (line 3); set 'encoding' "
        "to the file's real encoding (for example cp1252 or latin-1)"
    )
    frame = open_datasource(csv_source(path, encoding="cp1252")).load(authority)
    assert frame.data["city"].tolist() == ["Paris", "Li\xe8ge"]


def test_encoding_error_offset_is_exact_past_the_first_read_block(
    tmp_path: Path, authority: SidecarClient
) -> None:
    body = "a\n" + "\u00e9\n" * 700_000  # 2 bytes + newline per row: well past 1 MiB
    raw = body.encode("utf-8") + b"\xff\n"
    path = write(tmp_path / "big.csv", raw)
    message = load_error(csv_source(path), authority, DatasourceEncodingError)
    assert f"undecodable byte at offset {len(raw) - 2} (line 700002)" in message


def test_binary_file_given_as_csv(tmp_path: Path, authority: SidecarClient) -> None:
    pq.write_table(pa.table({"a": [1]}), tmp_path / "data.csv")
    message = load_error(csv_source(tmp_path / "data.csv"), authority, DatasourceFormatError)
    assert message == f"{tmp_path / 'data.csv'}: is a Parquet file, not CSV; use type 'parquet'"
    path = write(tmp_path / "nul.csv", b"a,b\n1,\x002\n")
    assert load_error(csv_source(path), authority, DatasourceFormatError) == (
        f"{path}: looks binary (a NUL byte at offset 6), not CSV text in utf-8"
    )


def test_ragged_row_names_the_line(tmp_path: Path, authority: SidecarClient) -> None:
    path = write(tmp_path / "ragged.csv", 'a,b\n1,2\n"x\ny",3\n4,5,6\n')
    assert load_error(csv_source(path), authority, DatasourceFormatError) == (
        f"{path}: line 5 has 3 fields but the header has 2 "
        "(look for an unquoted ',' or a missing field)"
    )


def test_bad_quoting_names_the_line(tmp_path: Path, authority: SidecarClient) -> None:
    path = write(tmp_path / "quotes.csv", 'a,b\n1,2\n"x"y,3\n')
    message = load_error(csv_source(path), authority, DatasourceFormatError)
    assert message.startswith(f"{path}: line 3: malformed CSV (")


def test_duplicate_header_names(tmp_path: Path, authority: SidecarClient) -> None:
    path = write(tmp_path / "dup.csv", "a,b,a\n1,2,3\n")
    assert load_error(csv_source(path), authority, DatasourceFormatError) == (
        f"{path}: header (line 1): column name(s) 'a' appear more than once"
    )


def test_schema_mismatch_names_the_column(tmp_path: Path, authority: SidecarClient) -> None:
    path = write(tmp_path / "people.csv", "id,name,score\n1,Ann,0.5\nx2,Bob,1\n")
    assert load_error(csv_source(path, columns=PEOPLE), authority, DatasourceSchemaError) == (
        f"{path}: column 'id' is declared integer, but line 3 holds text that is not a "
        "64-bit integer"
    )
    missing = {**PEOPLE, "age": ColumnType.INTEGER}
    assert load_error(csv_source(path, columns=missing), authority, DatasourceSchemaError) == (
        f"{path}: declared column(s) 'age' not found; the data has 'id', 'name', 'score'"
    )
    partial = {"id": ColumnType.STRING}
    assert load_error(csv_source(path, columns=partial), authority, DatasourceSchemaError) == (
        f"{path}: column(s) 'name', 'score' not declared in 'columns'; declare them or set "
        "extra_columns to 'drop' or 'keep'"
    )
    dropped = open_datasource(csv_source(path, columns=partial, extra_columns="drop"))
    assert list(dropped.load(authority).data.columns) == ["id"]


def test_typed_schema_mismatch_names_the_column_and_line(
    tmp_path: Path, authority: SidecarClient
) -> None:
    path = write(tmp_path / "p.jsonl", '{"id": 1, "ok": true}\n{"id": "two", "ok": false}\n')
    columns = {"id": ColumnType.INTEGER, "ok": ColumnType.BOOLEAN}
    config = JsonlDatasourceConfig(path=path, columns=columns, **LEVELS)
    assert load_error(config, authority, DatasourceSchemaError) == (
        f"{path}: column 'id' is declared integer, but line 2 holds a str value"
    )


def test_bad_json_line(tmp_path: Path, authority: SidecarClient) -> None:
    path = write(tmp_path / "bad.jsonl", '{"a": 1}\n{"a": 2,}\n')
    config = JsonlDatasourceConfig(path=path, **LEVELS)
    assert load_error(config, authority, DatasourceFormatError) == (
        f"{path}: line 2: not valid JSON (Expecting property name enclosed in double quotes "
        "at column 9)"
    )
    path = write(tmp_path / "list.jsonl", '{"a": 1}\n[1, 2]\n')
    config = JsonlDatasourceConfig(path=path, **LEVELS)
    assert load_error(config, authority, DatasourceFormatError) == (
        f"{path}: line 2: a JSON list where an object was expected"
    )


def test_nested_json_values_are_reported_with_the_file(
    tmp_path: Path, authority: SidecarClient
) -> None:
    path = write(tmp_path / "nested.jsonl", '{"a": {"b": 1}}\n')
    with pytest.raises(DatasourceSchemaError) as caught:
        open_datasource(JsonlDatasourceConfig(path=path, **LEVELS)).load(authority)
    assert str(caught.value).startswith(f"{path}: column 'a'")


def test_not_a_parquet_file(tmp_path: Path, authority: SidecarClient) -> None:
    path = write(tmp_path / "fake.parquet", "a,b\n1,2\n")
    with pytest.raises(DatasourceFormatError) as caught:
        open_datasource(ParquetDatasourceConfig(path=path, **LEVELS)).load(authority)
    assert str(caught.value).startswith(f"{path}: is not a readable Parquet file (")


def test_parquet_type_mismatch_names_the_column_and_row(
    tmp_path: Path, authority: SidecarClient
) -> None:
    pq.write_table(pa.table({"id": ["1", "2"]}), tmp_path / "t.parquet")
    config = ParquetDatasourceConfig(
        path=tmp_path / "t.parquet", columns={"id": ColumnType.INTEGER}, **LEVELS
    )
    assert load_error(config, authority, DatasourceSchemaError) == (
        f"{tmp_path / 't.parquet'}: column 'id' is declared integer, but row 1 holds a str value"
    )


# --- marking -------------------------------------------------------------------------------


def test_file_marked_above_the_declared_classification_is_refused(
    tmp_path: Path, authority: SidecarClient
) -> None:
    csv_path = write(tmp_path / "m.csv", "# classification: OFFICIAL_SENSITIVE\na\n1\n")
    jsonl_path = write(
        tmp_path / "m.jsonl",
        '{"_elspeth": {"classification": "OFFICIAL_SENSITIVE"}}\n{"a": 1}\n',
    )
    table = pa.table({"a": [1]}).replace_schema_metadata(
        {b"elspeth.classification": b"OFFICIAL_SENSITIVE"}
    )
    pq.write_table(table, tmp_path / "m.parquet")
    for path in (csv_path, jsonl_path, tmp_path / "m.parquet"):
        config = file_datasource_config(path, **LEVELS)
        with pytest.raises(MarkingError) as caught:
            open_datasource(config).load(authority)
        assert isinstance(caught.value, SecurityError)
        assert str(caught.value) == (
            f"{path}: the file is marked OFFICIAL_SENSITIVE but the datasource declares "
            "classification OFFICIAL; declare at least OFFICIAL_SENSITIVE"
        )
        raised = file_datasource_config(
            path, classification="OFFICIAL_SENSITIVE", clearance="OFFICIAL_SENSITIVE"
        )
        assert open_datasource(raised).load(authority).security_level is L.OFFICIAL_SENSITIVE


def test_unknown_banner_level(tmp_path: Path, authority: SidecarClient) -> None:
    path = write(tmp_path / "u.csv", "# classification: COSMIC\na\n1\n")
    assert load_error(csv_source(path), authority, DatasourceFormatError) == (
        f"{path}: line 1: the classification banner names no known level"
    )


# --- SQL errors ----------------------------------------------------------------------------


def test_sql_errors_name_the_problem(tmp_path: Path, authority: SidecarClient) -> None:
    url = _sqlite(tmp_path / "p.db")
    bad_query = SqlDatasourceConfig(url=url, query="select nope from people", **LEVELS)
    with pytest.raises(DatasourceQueryError) as caught:
        open_datasource(bad_query).load(authority)
    assert str(caught.value) == (
        f"SQL source {url}: the query failed (OperationalError: no such column: nope)"
    )
    no_table = SqlDatasourceConfig(url=url, table="absent", **LEVELS)
    assert load_error(no_table, authority, DatasourceQueryError).startswith(
        f"SQL source {url}: the read of table 'absent' failed ("
    )
    empty = SqlDatasourceConfig(url=url, query="select * from people where 0", **LEVELS)
    assert (
        load_error(empty, authority, DatasourceQueryError)
        == f"SQL source {url}: the query returned no rows"
    )


def test_sql_password_never_appears(authority: SidecarClient) -> None:
    url = "postgresql://analyst:Hunter2%2Fx@db.example:5432/records"
    config = SqlDatasourceConfig(url=url, table="people", **LEVELS)
    with pytest.raises(UnsupportedSourceError) as caught:
        open_datasource(config).load(authority)
    message = str(caught.value)
    assert message.startswith(
        "SQL source postgresql://analyst:***@db.example:5432/records: cannot use this URL ("
    )
    assert "Hunter2" not in message
    assert "Hunter2" not in repr(config)
    sqlite_url = "sqlite://analyst:Hunter2@/tmp/x.db"
    with pytest.raises(UnsupportedSourceError) as caught:
        open_datasource(SqlDatasourceConfig(url=sqlite_url, table="t", **LEVELS)).preflight()
    assert "Hunter2" not in str(caught.value)
    assert "sqlite://analyst:***@/tmp/x.db" in str(caught.value)


def test_scrub_removes_raw_and_percent_encoded_passwords_unit() -> None:
    url = "postgresql://u:p%40ss word@h/db"
    message = "auth failed for p@ss word (p%40ss%20word)\n(Background on this error at: x)"
    assert scrub(message, url) == "auth failed for *** (***)"
