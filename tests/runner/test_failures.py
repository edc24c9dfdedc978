"""The failure tally: top reasons, and the early stop's rule (runner/failures.py): evidence that spans the job."""

from batchvoc.runner.failures import EARLY_ROWS, FailureTally


def failed(count: int, reason: str = "mel holds 480 values, not n_mels x n_frames = 80 x 7") -> list[dict]:
    return [dict(id=f"u{i}", status="error", error=reason) for i in range(count)]


def test_rows_of_one_input_file_never_stop_the_job_however_many():
    tally = FailureTally()
    for _ in range(4):  # four shards of one bad file, among others not reported yet
        tally.add(failed(EARLY_ROWS), "bad.parquet")
    assert tally.rows == 4 * EARLY_ROWS and tally.early_stop() is None


def test_rows_of_two_input_files_failing_alike_stop_the_job_with_where_they_came_from():
    tally = FailureTally()
    tally.add(failed(10), "a.parquet")
    assert tally.early_stop() is None  # fewer than EARLY_ROWS rows
    tally.add(failed(10), "b.parquet")
    reason = tally.early_stop()
    assert reason.startswith("the first 20 rows, from 2 input files, all failed the same way, e.g. mel holds"), reason


def test_a_job_of_one_input_file_stops_on_two_of_its_shards():
    tally = FailureTally()
    tally.add(failed(EARLY_ROWS), "m.r000000000-000000016")
    assert tally.early_stop(by_file=False) is None  # one shard: perhaps one bad stretch of the file
    tally.add(failed(4), "m.r000000016-000000020")
    assert "from 2 shards of its one input file" in tally.early_stop(by_file=False)


def test_other_reasons_suspect_rows_or_an_ok_row_mean_no_early_stop():
    two_kinds = FailureTally()
    two_kinds.add(failed(EARLY_ROWS), "a.parquet")
    two_kinds.add(failed(EARLY_ROWS, "mel is null"), "b.parquet")
    suspect = FailureTally()
    suspect.add(failed(EARLY_ROWS), "a.parquet")
    suspect.add([dict(id="s", status="suspect", error="mel_error 1.2 > 0.8")], "b.parquet")
    some_ok = FailureTally(ok=1)
    some_ok.add(failed(EARLY_ROWS), "a.parquet")
    some_ok.add(failed(EARLY_ROWS), "b.parquet")
    assert two_kinds.early_stop() is None and suspect.early_stop() is None and some_ok.early_stop() is None
    assert [t["rows"] for t in two_kinds.top()] == [EARLY_ROWS, EARLY_ROWS]


def test_a_null_example_id_reads_null_and_valid_ids_print_as_they_are():
    from batchvoc.runner.failures import console_lines

    tally = FailureTally()
    tally.add([dict(id=None, status="error", error="id is null (row 3 of m.parquet)"),
               dict(id="spk 1/utt'2", status="error", error="mel is null"),
               dict(id="a\nb", status="error", error="id 'a\\nb' holds a control character (U+000A)")])  # fmt: skip
    assert [t["example_id"] for t in tally.top()] == ["null", "spk 1/utt'2", "'a\\nb'"]
    lines = console_lines(tally.top())
    assert lines[0].endswith("(e.g. id null)") and lines[1].endswith("(e.g. id spk 1/utt'2)"), lines
    assert lines[2].endswith("(e.g. id 'a\\nb')"), lines


def test_a_line_of_rows_whose_numbers_differ_says_whose_numbers_it_shows():
    from batchvoc.runner.failures import console_lines

    tally = FailureTally()
    tally.add([dict(id="a", status="error", error="mel holds 480 values, not 80 x 7"),
               dict(id="b", status="error", error="mel holds 480 values, not 80 x 7"),
               dict(id="c", status="error", error="mel is scaled by 0.35 (Tacotron's [-4, 4])"),
               dict(id="d", status="error", error="mel is scaled by 0.50 (Tacotron's [-4, 4])")])  # fmt: skip
    same, varied = console_lines(tally.top())
    assert same == "  2 rows error: mel holds 480 values, not 80 x 7 (e.g. id a)", same
    assert varied == ("  2 rows error: mel is scaled by 0.35 (Tacotron's [-4, 4]) (the numbers of id c; the other "
                      "rows' differ: see the `error` column)"), varied  # fmt: skip


def test_kinds_of_one_status_keep_five_ids_each_and_rows_may_be_streamed():
    """The report's failure tables read kinds(status): every kind of that status, most rows first, with its masked
    reason and its first five ids; rows come a batch at a time, as a generator."""
    tally = FailureTally()
    rows = (dict(id=f"u{i}", status="error", error=f"n_mels is {100 + i % 2}, the model takes 80") for i in range(7))
    tally.add(rows, "a.parquet")
    tally.add([dict(id="s", status="suspect", error="mel_error 1.2 > 0.8")])
    (error,) = tally.kinds("error")
    assert error["rows"] == 7 and error["kind"] == "n_mels is N, the model takes N" and not error["alike"]
    assert error["ids"] == ["u0", "u1", "u2", "u3", "u4"] and error["example_id"] == "u0"
    assert [k["reason"] for k in tally.kinds("suspect")] == ["mel_error 1.2 > 0.8"] and tally.kinds("ok") == []
    assert tally.sources == {"a.parquet"} and tally.rows == 8
    assert {k: v for k, v in error.items() if k not in ("kind", "ids")} == tally.top()[0]  # top()'s entry
