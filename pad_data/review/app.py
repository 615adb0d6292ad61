"""pad review: inspect faulty programs, give verdicts (one or in bulk), fix and re-run them.

Started by ``pad review [--db PATH] [--port P] [--host H] [--token T]``, which runs this file
with Streamlit (``apps/review.py`` is the source tree's entry to the same app). Data access
lives in :mod:`pad_data.review`; this file is only the UI.

When ``$PAD_REVIEW_TOKEN`` is set (``pad review`` sets it for a non-loopback address), no page
renders before the URL's ``?token=`` matches it; the session then remembers it.
"""

from __future__ import annotations

import argparse
import getpass
import hmac
import os
import re
import sys
from typing import NoReturn

import streamlit as st

from pad_data import review as rv
from pad_data.rules.display import visible
from pad_data.rules.labels import LABELS, label_for
from pad_data.store import StoreError, resolve_path

PAGE_SIZES = [25, 50, 100]
SHORTCUTS = {"j": "next program", "k": "previous program", "a": "accept", "x": "reject", "f": "needs fix"}
BUSY_ICON = ":material/hourglass_top:"


def db_path() -> str:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--db")
    args, _ = ap.parse_known_args(sys.argv[1:])
    return str(resolve_path(args.db))


def check_token() -> None:
    """Stop before anything renders unless the session holds ``$PAD_REVIEW_TOKEN`` (from ``?token=``)."""
    expected = os.environ.get("PAD_REVIEW_TOKEN")
    if not expected:
        return
    given = st.query_params.get("token") or st.session_state.get("_pad_token") or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        st.error("This pad review server needs its access token: open the address `pad review` printed "
                 "(it ends in `?token=...`).", icon=":material/lock:")
        st.stop()
    st.session_state["_pad_token"] = given


def busy(exc: Exception) -> NoReturn:
    st.warning(f"{exc}", icon=BUSY_ICON)
    st.stop()


# ---------------------------------------------------------------------- cached reads
# Kept per store token (the file's size and mtime): any write to the store misses the cache.
@st.cache_data(max_entries=8, show_spinner=False)
def cached_overview(db: str, token: tuple) -> tuple[dict, dict]:
    with rv.reading(db) as store:
        return rv.choices(store), rv.overview(store)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_count(db: str, token: tuple, filters: rv.Filters) -> int:
    with rv.reading(db) as store:
        return rv.count(store, filters)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_page(db: str, token: tuple, filters: rv.Filters, offset: int, limit: int):
    with rv.reading(db) as store:
        return rv.page(store, filters, offset, limit)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_detail(db: str, token: tuple, pid: str):
    with rv.reading(db) as store:
        return rv.program_detail(store, pid)


def highlighted(program: str, line: int | None) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    fmt = HtmlFormatter(noclasses=True, linenos="inline", hl_lines=[line] if line else [],
                        hl_color="#ffd7d7", style="default")
    return f'<div style="font-size:0.9em;overflow-x:auto">{highlight(program, PythonLexer(), fmt)}</div>'


def literal(text: object) -> str:
    """``text`` as a Markdown code span, for data inside Streamlit Markdown (st.markdown, st.error...):
    shown as written, never read as Markdown, HTML, a link or image, an emoji or colour code."""
    text = visible(str(text), keep="")  # a code span is one line
    if not text:
        return ""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""  # CommonMark strips one space each side
    return f"{fence}{pad}{text}{pad}{fence}"


def move(delta: int | None = None, to: int | None = None) -> None:
    """Button and jump callbacks: set the position before the rerun renders it."""
    pos = st.session_state.get("pos", 0)
    st.session_state["pos"] = max(0, (pos + delta) if delta is not None else to)


# ---------------------------------------------------------------------- tabs
def overview_tab(ov: dict) -> None:
    totals = ov["totals"].iloc[0]
    c1, c2, c3 = st.columns(3)
    c1.metric("Problems", f"{totals.problems:,}")
    c2.metric("Programs", f"{totals.programs:,}")
    c3.metric("Reviewed programs (per reviewer)", f"{totals.reviews:,}")
    st.subheader("Label distribution")
    st.bar_chart(ov["labels"], x="label", y="programs", horizontal=True, sort=False)  # the table's order
    st.dataframe(ov["labels"], hide_index=True, key="ov_labels")
    st.subheader("Per dataset and teacher")
    st.dataframe(ov["by_dataset"], hide_index=True, key="ov_by_dataset")
    left, right = st.columns(2)
    with left:
        st.subheader("Error types")
        st.dataframe(ov["error_types"], hide_index=True, key="ov_errors")
    with right:
        st.subheader("Execution time")
        st.bar_chart(ov["durations"].set_index("duration"))


def filter_bar(options: dict) -> tuple[rv.Filters, int]:
    cols = st.columns([1, 1, 1, 1, 1, 1])
    filters = rv.Filters(
        dataset=cols[0].multiselect("Dataset", options["dataset"], key="f_dataset"),
        label=cols[1].multiselect("Label", [l for l in LABELS if l in options["label"]], key="f_label"),
        error_type=cols[2].multiselect("Error type", options["error_type"], key="f_error_type"),
        origin=cols[3].multiselect("Origin", options["origin"], key="f_origin"),
        teacher=cols[4].multiselect("Teacher", options["teacher"], key="f_teacher"),
        verdict=cols[5].multiselect("Verdict", options["verdict"], key="f_verdict"),
    )
    left, mid, right = st.columns([4, 1, 1])
    filters.text = left.text_input("Search question or program", key="f_text")
    page_size = mid.selectbox("Rows per page", PAGE_SIZES, index=1, key="page_size")
    right.text_input("Reviewer", value=os.environ.get("PAD_REVIEWER") or getpass.getuser(), key="reviewer")
    return filters, page_size


def bulk_panel(db: str, filters: rv.Filters, total: int, selected: list[str], reviewer: str) -> None:
    """A verdict for every program of the filter, or for the selected rows, after a confirmation."""
    if "bulk_done" in st.session_state:  # above the panel, which may render collapsed after the rerun
        st.success(st.session_state.pop("bulk_done"))
    with st.expander("Bulk verdict", expanded="bulk_pending" in st.session_state):
        scope = st.radio(f"Programs: {total:,} match the filter, {len(selected):,} rows are selected",
                         ["filter", "selected"], horizontal=True, key="bulk_scope",
                         format_func={"filter": "all matching the filter", "selected": "the selected rows"}.get)
        verdict = st.radio("Verdict", rv.VERDICTS, horizontal=True, key="bulk_verdict")
        note = st.text_input("Note", key="bulk_note")
        n = total if scope == "filter" else len(selected)
        if st.button("Apply…", key="bulk_apply", disabled=n == 0):
            st.session_state["bulk_pending"] = {"scope": scope, "verdict": verdict, "note": note, "n": n,
                                                "filters": filters, "ids": list(selected)}
        pending = st.session_state.get("bulk_pending")
        if pending:
            st.warning(f"Give the verdict **{pending['verdict']}** to **{pending['n']:,}** programs "
                       f"(reviewer {reviewer or 'none'})?")
            yes, no = st.columns(2)
            if yes.button(f"Confirm: {pending['n']:,} programs", key="bulk_confirm", type="primary"):
                st.session_state.pop("bulk_pending")
                try:
                    if pending["scope"] == "filter":
                        done = rv.add_verdicts(db, pending["verdict"], pending["note"], reviewer,
                                               filters=pending["filters"])
                    else:
                        done = rv.add_verdicts(db, pending["verdict"], pending["note"], reviewer,
                                               program_ids=pending["ids"])
                except StoreError as exc:
                    busy(exc)
                st.session_state["bulk_done"] = f"Saved {pending['verdict']} for {done:,} programs."
                st.rerun()
            if no.button("Cancel", key="bulk_cancel"):
                st.session_state.pop("bulk_pending")
                st.rerun()


def _current_page(db: str, token: tuple, filters: rv.Filters, page_size: int) -> tuple[int, int, int, object]:
    """``(total, pos, start, table)``: the count of the filter, the open program's position (back to
    the first when the filter changed), and the page of rows holding it."""
    signature = repr(filters)
    if st.session_state.get("filters_sig") != signature:
        st.session_state["filters_sig"] = signature
        st.session_state["pos"] = 0
        st.session_state.pop("bulk_pending", None)
    try:
        total = cached_count(db, token, filters)
        pos = min(st.session_state.get("pos", 0), max(total - 1, 0))
        start = (pos // page_size) * page_size
        return total, pos, start, cached_page(db, token, filters, start, page_size)
    except StoreError as exc:
        busy(exc)


def _program_table(table, filters: rv.Filters, total: int, pos: int, start: int,
                   page_size: int) -> tuple[int, list[str]]:
    """The page as a selectable table: ``(pos, selected program ids)``, where a row just selected
    becomes the open program."""
    st.write(f"**{total:,}** {'program matches' if total == 1 else 'programs match'}. Showing rows "
             f"{start + 1 if total else 0:,}-{min(start + page_size, total):,}; select a row to open it.")
    key = f"programs_table_{abs(hash((repr(filters), start, page_size)))}"
    event = st.dataframe(table, hide_index=True, key=key, on_select="rerun", selection_mode="multi-row")
    rows = list(event.selection.rows) if event is not None else []
    before = set(st.session_state.get("_selected_rows", {}).get(key, []))
    st.session_state["_selected_rows"] = {key: rows}
    opened = [r for r in rows if r not in before]
    if opened and opened[-1] < len(table):
        pos = start + opened[-1]
        st.session_state["pos"] = pos
    return pos, [table.program_id.iloc[r] for r in rows if r < len(table)]


def _nav_bar(pos: int, total: int) -> None:
    nav = st.columns([1, 1, 2, 4])
    nav[0].button("◀ Previous", shortcut="k", disabled=pos == 0, key="prev", on_click=move, args=(-1,))
    nav[1].button("Next ▶", shortcut="j", disabled=pos >= total - 1, key="next", on_click=move, args=(1,))
    if total:
        st.session_state["jump"] = pos + 1
        nav[2].number_input("Go to program #", min_value=1, max_value=total, step=1, key="jump",
                            on_change=lambda: move(to=st.session_state["jump"] - 1))
    nav[3].caption("Keyboard: " + " · ".join(f"`{k}` {what}" for k, what in SHORTCUTS.items())
                   + " (verdict keys save and move on)")


def _open_program(db: str, token: tuple, filters: rv.Filters, table, pos: int, start: int) -> dict:
    """The detail of the program at ``pos`` (on this page, or read alone when a jump left it)."""
    try:
        pid = table.program_id.iloc[pos - start] if pos - start < len(table) else \
            cached_page(db, token, filters, pos, 1).program_id.iloc[0]
        return cached_detail(db, token, pid)
    except StoreError as exc:
        busy(exc)


def _program_view(d: dict, pos: int, total: int) -> None:
    """The program with its question, answers, error, output, parent diff, siblings and reviews."""
    st.subheader(f"Program {pos + 1:,} of {total:,}: `{d['program_id']}`, label **{d['label'] or 'not executed'}**")
    st.markdown(f"**Question** ({literal(d['dataset'])}, {d['split']}):")
    st.text(d["question"])  # plain text: a question is data, never Markdown
    gold = d["gold_text"] if d["gold_text"] is not None else d["gold"]
    a, b = st.columns(2)
    a.metric("Gold answer", str(gold))
    b.metric("Returned", "" if d["value"] is None else str(d["value"])[:40])
    st.markdown(f"**Teacher** {literal(d['teacher'])} · **Origin** {literal(d['origin'])} · **Verdict** "
                f"{d['verdict'] or 'none yet'}")
    line = int(d["error_line"]) if d["error_line"] is not None and d["error_line"] == d["error_line"] else None
    st.html(highlighted(d["program"], line))
    if d["error_type"] or d["error_message"]:
        where = ""
        if line and line <= len(d["program"].splitlines()):
            where = f"line {line}: {literal(d['program'].splitlines()[line - 1].strip())} — "
        st.error(f"{where}{literal(d['error_type'] or d['label'])}: {literal(d['error_message'] or '')}")
    if d["stdout"]:
        st.text_area("stdout", d["stdout"], disabled=True, key=f"stdout_{d['program_id']}")
    if d["parent_program"]:
        st.markdown("**Diff against the parent program**")
        st.code(rv.diff(d["parent_program"], d["program"]) or "(identical)", language="diff")
    st.markdown("**Sibling programs for this problem**")
    st.dataframe(d["siblings"], hide_index=True, key="siblings")
    if len(d["reviews"]):
        st.markdown("**Reviews** (`current`: each reviewer's verdict now; the others are history)")
        st.dataframe(d["reviews"], hide_index=True, key="reviews")


def _verdict_panel(db: str, d: dict, pos: int, total: int, reviewer: str) -> None:
    """Accept, reject or needs-fix with a note; saving opens the next program."""
    st.markdown("**Verdict** (saved with the note, then the next program opens)")
    note = st.text_area("Note", key=f"note_{d['program_id']}")
    buttons = st.columns(3)
    for col, (verdict, keyname, label) in zip(buttons, (("accept", "a", "Accept"), ("reject", "x", "Reject"),
                                                         ("needs-fix", "f", "Needs fix"))):
        if col.button(label, key=f"verdict_{verdict}", shortcut=keyname):
            try:
                rv.add_review(db, d["program_id"], verdict, note, reviewer)
            except StoreError as exc:
                busy(exc)
            st.session_state["saved"] = f"Saved {verdict} for `{d['program_id']}`."
            move(1 if pos < total - 1 else 0)
            st.rerun()
    if "saved" in st.session_state:
        st.success(st.session_state.pop("saved"))


def _fix_panel(db: str, d: dict, reviewer: str) -> None:
    """Edit the program, run the edit in the sandbox, or save it as a new program."""
    st.markdown("**Fix and re-run**")
    edited = st.text_area("Program", d["program"], height=260, key=f"edit_{d['program_id']}")
    run_col, save_col = st.columns(2)
    if run_col.button("Run in sandbox", key="run_edit"):
        res = rv.try_program(edited)
        label, _ = label_for(res.status, res.value_type, res.value, d["gold"] if d["gold"] == d["gold"] else None,
                             d["gold_text"], d.get("gold_choice"))
        st.info(f"Run result: {label} (status {res.status}, value {literal(repr(res.value))}"
                f"{', ' + literal(f'{res.error_type}: {res.error_message}') if res.error_type else ''})")
    if save_col.button("Save as new program", key="save_fix"):
        try:
            out = rv.save_fix(db, d["program_id"], edited, reviewer)
            st.success(f"Saved fix `{out['program_id']}` (origin human): {out['label']}"
                       + ("" if out["added"] else " (this exact program was already stored)"))
        except StoreError as exc:
            busy(exc)


def programs_tab(db: str, token: tuple, options: dict) -> None:
    filters, page_size = filter_bar(options)
    reviewer = st.session_state.get("reviewer", "")
    total, pos, start, table = _current_page(db, token, filters, page_size)
    pos, selected = _program_table(table, filters, total, pos, start, page_size)
    _nav_bar(pos, total)
    bulk_panel(db, filters, total, selected, reviewer)
    if not total:
        st.info("No program matches these filters.")
        return
    d = _open_program(db, token, filters, table, pos, start)
    _program_view(d, pos, total)
    review_col, edit_col = st.columns(2)
    with review_col:
        _verdict_panel(db, d, pos, total, reviewer)
    with edit_col:
        _fix_panel(db, d, reviewer)


def sql_tab(db: str) -> None:
    st.markdown("Read-only SQL over `problems`, `programs`, `executions`, `labeled_programs`, "
                "`reviews`, `current_reviews`, `program_verdicts`, `curations`... (one SELECT, at most 1,000 rows).")
    query = st.text_area("Query", "SELECT label, count(*) AS programs FROM program_labels GROUP BY 1 ORDER BY 2 DESC",
                         key="sql_query", height=120)
    if st.button("Run query", key="run_sql"):
        try:
            st.session_state["sql_result"] = rv.run_sql(db, query)
        except StoreError as exc:
            busy(exc)
        except Exception as exc:  # noqa: BLE001 - SQL errors are shown, not raised
            st.session_state.pop("sql_result", None)
            st.error(literal(str(exc).splitlines()[0]))
    if "sql_result" in st.session_state:
        result = st.session_state["sql_result"]
        st.dataframe(result, hide_index=True, key="sql_table")
        st.download_button("Download CSV", result.to_csv(index=False), file_name="pad-query.csv", mime="text/csv")


def main() -> None:
    st.set_page_config(page_title="pad review", layout="wide", menu_items={"Get help": None,
                                                                          "Report a bug": None, "About": None})
    check_token()
    db = db_path()
    st.title("pad review")
    st.caption(f"store: `{db}`")
    if not os.path.exists(db):
        st.error(f"{db}: no such store. Run `pad run` (or `pad ingest` ...) first.")
        st.stop()
    token = rv.store_token(db)
    try:
        options, ov = cached_overview(db, token)
    except StoreError as exc:
        busy(exc)
    overview, programs, sql = st.tabs(["Overview", "Programs", "SQL"])
    with overview:
        overview_tab(ov)
    with programs:
        programs_tab(db, token, options)
    with sql:
        sql_tab(db)


if __name__ == "__main__":
    main()
