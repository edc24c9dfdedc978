"""Why rows failed: the top reasons of a job (count and one example id each), and the early stop.

Reasons are grouped by kind: numbers and quoted names are masked, so "n_mels 100 ..." and "n_mels 128 ..."
count as one reason; each group shows the first row's own reason and id (rows.shown_id: a null id as `null`).
FailureTally is the one place rows are grouped so: the console's top reasons, summary.json's top_failures and the
report's failure tables (batchvoc/report) all read it.

The early stop: bad input never stops a job (DESIGN.md), but a configuration mistake that every row meets (every
mel in the wrong convention, the wrong checkpoint) would spend the cluster on rows that all fail. So a job stops
early only on evidence that spans it: its first EARLY_ROWS rows (or more) all failed for one reason, none ok, and
they come from at least EARLY_SOURCES sources: input files, or for a job whose shards all come from one input file,
shards. One bad file among good ones never stops it. The rows of the shards not run are not failed: the same
command runs exactly those once the cause is fixed (batchvoc/__main__.py says so).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchvoc.errors import counted
from batchvoc.manifest.rows import shown_id

EARLY_ROWS = 16  # rows to see before stopping a job whose rows all fail for one reason
EARLY_SOURCES = 2  # input files (or shards, where there is one file) those rows must come from
TOP = 5
IDS_KEPT = 5  # ids kept per kind of reason (the report's "ids (up to 5)")
_PLACE = re.compile(r"\(row \d+ of [^()]*\)")  # where a row is: row_place's "(row 4 of /data/m.parquet)"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_CODE_POINT = re.compile(r"U\+[0-9A-F]{4,6}\b")
_NUMBER = re.compile(r"(?<![A-Za-z_])-?\d+(\.\d+)?(e-?\d+)?")


def reason_kind(reason: str) -> str:
    """A failure reason with its particulars blanked, so rows failing the same way count together (the closing
    summary's top reasons, the report's kinds): numbers ("n_mels is 100, the model takes 80 mel bands" -> "n_mels
    is N, the model takes N mel bands"), quoted names, a character's code point (U+000A -> U+…) and where the row
    is ("(row 4 of /data/m.parquet)" -> "(row N of …)")."""
    kind = _PLACE.sub("(row N of …)", reason)
    kind = _CODE_POINT.sub("U+…", _QUOTED.sub("'…'", kind))
    return _NUMBER.sub("N", kind).strip()


def _numbers(reason: str) -> list[str]:
    """The numbers of a reason that are not where the row is, its id or a code point: what its fix depends on.
    Whole matches: findall would give _NUMBER's groups (a fraction, an exponent), blind to 100 against 128."""
    return [m.group() for m in _NUMBER.finditer(_CODE_POINT.sub("", _QUOTED.sub("", _PLACE.sub("", reason))))]


@dataclass
class FailureTally:
    """Rows seen and, per reason kind, how many failed or were suspect, with the first one's id and reason."""

    rows: int = 0
    ok: int = 0
    errors: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (status, kind) -> rows
    examples: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # -> (id, reason)
    varied: set[tuple[str, str]] = field(default_factory=set)  # kinds whose rows' reasons differ (their numbers)
    sources: set[str] = field(default_factory=set)  # where the rows added came from (input files, or shards)
    ids: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # -> the first IDS_KEPT ids

    def add(self, rows: Iterable[Mapping[str, Any]], source: str = "") -> None:
        """Count rows of an output manifest (`id`, `status`, `error`); `source`: where they came from (the early
        stop's evidence: their input file, or their shard where the job's shards all come from one file).
        `rows` may be any iterable (the report streams a whole job's rows through it)."""
        seen = self.rows
        for row in rows:
            self.rows += 1
            status = row.get("status") or "error"
            if status == "ok":
                self.ok += 1
                continue
            self.errors += status == "error"
            reason = str(row.get("error") or "no reason given")
            key = (status, reason_kind(reason))
            self.counts[key] += 1
            self._keep(key, shown_id(row.get("id")), reason)
        if source and self.rows > seen:
            self.sources.add(source)

    def _keep(self, key: tuple[str, str], shown: str, reason: str) -> None:
        """Note a failed row of kind `key`: the first is the kind's example, whose numbers the others are compared
        with (`varied`), and the first IDS_KEPT ids are kept for the report."""
        example = self.examples.setdefault(key, (shown, reason))
        if _numbers(example[1]) != _numbers(reason):
            self.varied.add(key)
        ids = self.ids.setdefault(key, [])
        if len(ids) < IDS_KEPT:
            ids.append(shown)

    def top(self, k: int = TOP) -> list[dict[str, Any]]:
        """The k most common reasons: status, rows, example_id, reason (the example's own), alike (whether every
        row of that kind had the example's numbers: the fix it names holds for all of them)."""
        return [self._entry(key, n) for key, n in self.counts.most_common(k)]

    def kinds(self, status: str) -> list[dict[str, Any]]:
        """Every reason of rows with `status`, most rows first: top()'s entries plus `kind` (the masked reason)
        and `ids` (the first IDS_KEPT ids, the example's first). The report's failure tables."""
        return [dict(self._entry(key, n), kind=key[1], ids=self.ids[key])
                for key, n in self.counts.most_common() if key[0] == status]  # fmt: skip

    def _entry(self, key: tuple[str, str], rows: int) -> dict[str, Any]:
        """One reason as top() gives it (summary.json's top_failures, the console's lines)."""
        example_id, reason = self.examples[key]
        return dict(status=key[0], rows=rows, example_id=example_id, reason=reason, alike=key not in self.varied)

    def left_out(self, k: int = TOP) -> tuple[int, int]:
        """(reasons, rows) that `top(k)` leaves out: the kinds past the k most common and their rows."""
        rest = self.counts.most_common()[k:]
        return len(rest), sum(n for _, n in rest)

    def early_stop(self, by_file: bool = True) -> str | None:
        """Why to stop now, or None: at least EARLY_ROWS rows seen, none ok, all errors of one kind, from at least
        EARLY_SOURCES sources (module doc). `by_file`: the sources are input files (else the shards of the one)."""
        if self.rows < EARLY_ROWS or self.ok or self.errors != self.rows or len(self.counts) != 1:
            return None
        if len(self.sources) < EARLY_SOURCES:
            return None  # one file (or one shard) of bad input: the rest may be good
        ((_, reason),) = self.examples.values()
        where = f"{len(self.sources)} input files" if by_file else f"{len(self.sources)} shards of its one input file"
        return f"the first {self.rows} rows, from {where}, all failed the same way, e.g. {reason}"


def console_lines(
    top: list[dict[str, Any]], left_out: int = 0, left_out_rows: int = 0, manifest: str = ""
) -> list[str]:
    """One line per reason for the end of a job's console output, and a last one for the reasons left out (where
    the rest of them are: the `error` column of the output manifest, `manifest`)."""
    lines = [f"  {counted(t['rows'], 'row')} {t['status']}: {t['reason']} ({example_note(t)})" for t in top]
    if left_out:
        more = f"{left_out} more {'reason' if left_out == 1 else 'reasons'}"
        lines.append(f"  … and {more} ({counted(left_out_rows, 'row')}): see the `error` column of "
                     f"the output manifest, {manifest}")  # fmt: skip
    return lines


def example_note(top: dict[str, Any]) -> str:
    """Whose reason a line shows, and whether the other rows' numbers differ from it (then the fix it names may
    not hold for them): the console's lines and the report's failure tables say it alike."""
    if top.get("alike", True):
        return f"e.g. id {top['example_id']}"
    return f"the numbers of id {top['example_id']}; the other rows' differ: see the `error` column"
