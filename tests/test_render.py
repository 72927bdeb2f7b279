"""render.py without a cluster: folding free text, fitting tables to a terminal's width,
and output that is not a terminal (never wrapped, no trailing spaces)."""

from __future__ import annotations

import io

import pytest

from kubectl_runai_dr import render
from kubectl_runai_dr.render import Col


def draw(width: int | None, *objects: object) -> str:
    """What a console ``width`` columns wide (None: not a terminal) prints."""
    buf = io.StringIO()
    console = render._Console(file=buf, force_terminal=width is not None, color_system=None,
                              highlight=False, width=width)
    if width is None:
        assert console.width == render.UNLIMITED
    for obj in objects:
        console.print(obj)
    return buf.getvalue()


def lines_of(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.splitlines()]


# -- free text -----------------------------------------------------------------------------------
def test_fold_breaks_between_words_with_a_hanging_indent() -> None:
    out = lines_of(draw(20, render.Folded("one two three four five six seven eight")))
    assert out == ["one two three four", "  five six seven", "  eight"]


def test_a_word_longer_than_the_line_runs_over_whole() -> None:
    long = "/a/very/long/path/to/a/bundle.tar.gz"
    out = lines_of(draw(20, render.Folded(f"bundle {long} is gone")))
    assert out == [f"bundle {long}", "  is gone"]


def test_tagged_messages_align_after_the_tag() -> None:
    buf = io.StringIO()
    console = render._Console(file=buf, force_terminal=True, color_system=None, width=30)
    render.warn(console, "the RunaiConfig CRD is not installed and the cluster step prints")
    assert lines_of(buf.getvalue()) == ["warning: the RunaiConfig CRD",
                                        "         is not installed and",
                                        "         the cluster step",
                                        "         prints"]


def test_not_a_terminal_is_never_wrapped_and_has_no_trailing_spaces() -> None:
    text = "word " * 200
    out = draw(None, render.Folded(text),
               render.table(None, ["A", Col("B", text=True)], [["x", text], ["y", ""]]))
    lines = out.splitlines()
    assert lines[0] == text.strip()
    assert [ln for ln in lines if ln != ln.rstrip()] == []
    assert any(ln.startswith(" x ") and ln.endswith(text.strip()) for ln in lines)


def test_key_values_fold_under_the_value() -> None:
    kv = render.key_values([("target server", "https://10.0.0.1:6443"),
                            ("bundle from", "prod (https://10.0.0.2:6443), 2026-11-01T00:00:00Z")])
    assert lines_of(draw(50, kv)) == [
        "target server  https://10.0.0.1:6443",
        "bundle from    prod (https://10.0.0.2:6443),",
        "               2026-11-01T00:00:00Z"]


# -- tables -------------------------------------------------------------------------------------
NAMES = ["runai-proj-0000/researcher-service-rw", "global.nodeAffinity.restrictScheduling"]
COLUMNS: list[str | Col] = ["STEP", "STATUS", Col("OBJECTS", drop=1), Col("SIZE", drop=2),
           Col("TIME", drop=3, short=lambda c: c.split(" (")[0]), Col("NOTE", text=True)]
ROWS = [["control-plane", "after cluster", "240", "150.5 KiB", "1m03s (waited 58s)",
         f"the chart also sets {NAMES[1]}; keep it in its values"],
        ["namespaces", "ok", "1", "1.8 KiB", "2s", f"e.g. {NAMES[0]}, and more"]]


def layout(width: int) -> render._Layout:
    console = render._Console(file=io.StringIO(), force_terminal=True, width=width)
    return render.table(None, COLUMNS, ROWS).layout(console, width)


def test_a_wide_terminal_shows_everything_on_one_line_per_row() -> None:
    lay = layout(200)
    assert lay.shown == [0, 1, 2, 3, 4, 5] and not lay.short and not lay.below
    out = lines_of(draw(200, render.table(None, COLUMNS, ROWS)))
    assert len(out) == 4 and all(len(ln) <= 200 for ln in out)


@pytest.mark.parametrize("width", [150, 120, 100, 90, 80, 70, 60, 50, 40])
def test_identifiers_are_never_split(width: int) -> None:
    out = draw(width, render.table("summary", COLUMNS, ROWS))
    for ident in ["control-plane", "after cluster", "namespaces", *NAMES]:
        assert any(ident in ln for ln in out.splitlines()), (width, out)


def test_free_text_folds_before_anything_goes() -> None:
    lay = layout(120)
    assert lay.shown == [0, 1, 2, 3, 4, 5] and not lay.short and lay.total <= 120
    out = lines_of(draw(120, render.table(None, COLUMNS, ROWS)))
    assert len(out) > 4 and all(len(ln) <= 120 for ln in out)
    assert any(ln.endswith("keep it in its values") for ln in out)  # a folded note


def test_low_value_columns_are_shortened_then_left_out_in_order() -> None:
    lay = layout(105)
    assert lay.shown == [0, 1, 2, 3, 4, 5] and lay.short == {4}
    lay = layout(98)
    assert lay.shown == [0, 1, 2, 3, 5]  # TIME (drop 3) went first
    lay = layout(90)
    assert lay.shown == [0, 1, 2, 5]  # then SIZE
    assert layout(80).shown == [0, 1, 5]  # then OBJECTS


def test_free_text_goes_under_the_table_when_even_that_is_not_enough() -> None:
    lay = layout(60)
    assert lay.below == [5] and 5 not in lay.shown and lay.total <= 60
    out = lines_of(draw(60, render.table(None, COLUMNS, ROWS)))
    assert "NOTE" in out
    assert any(ln.startswith("  control-plane: the chart also sets") for ln in out), out
    assert all(len(ln) <= 60 for ln in out if "│" in ln or "┃" in ln)


def test_a_table_whose_names_cannot_fit_runs_over_rather_than_split() -> None:
    rows = [["runai-dr-data-runai-backend-redis-queue-master-0-20261130-123940", "yes"]]
    out = draw(30, render.table(None, ["NAME", "READY"], rows))
    assert any(rows[0][0] in ln and "yes" in ln for ln in out.splitlines()), out


def test_empty_columns_go_first() -> None:
    rows = [["volumes", "ok", ""], ["secrets", "skipped", ""]]
    console = render._Console(file=io.StringIO(), force_terminal=True, width=20)
    lay = render.table(None, ["COMPONENT", "STATUS", Col("ERROR", text=True)],
                       rows).layout(console, 20)
    assert lay.shown == [0, 1] and lay.below == []
