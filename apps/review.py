"""pad review: inspect faulty programs, annotate them, fix and re-run them in the sandbox.

Start it with ``pad review [--db PATH] [--port P]`` (or ``streamlit run apps/review.py --
--db PATH``). Data access lives in :mod:`pad_data.review`; this file is only the UI.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

import streamlit as st

from pad_data import review as rv
from pad_data.labels import LABELS
from pad_data.store import StoreError, resolve_path

st.set_page_config(page_title="pad review", layout="wide")


def db_path() -> str:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--db")
    args, _ = ap.parse_known_args(sys.argv[1:])
    return str(resolve_path(args.db))


DB = db_path()


def busy(exc: Exception) -> None:
    st.warning(f"{exc}", icon="⏳")
    st.stop()


def highlighted(program: str, line: int | None) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    fmt = HtmlFormatter(noclasses=True, linenos="inline", hl_lines=[line] if line else [],
                        hl_color="#ffd7d7", style="default")
    return f'<div style="font-size:0.9em;overflow-x:auto">{highlight(program, PythonLexer(), fmt)}</div>'


st.title("pad review")
st.caption(f"store: `{DB}`")
if not os.path.exists(DB):
    st.error(f"{DB}: no such store. Run `pad run` (or `pad ingest` ...) first.")
    st.stop()

try:
    with rv.reading(DB) as store:
        options = rv.choices(store)
        ov = rv.overview(store)
except StoreError as exc:
    busy(exc)

with st.sidebar:
    st.header("Filter programs")
    reviewer = st.text_input("Reviewer", value=os.environ.get("PAD_REVIEWER") or getpass.getuser(), key="reviewer")
    filters = rv.Filters(
        dataset=st.multiselect("Dataset", options["dataset"], key="f_dataset"),
        label=st.multiselect("Label", [l for l in LABELS if l in options["label"]], key="f_label"),
        error_type=st.multiselect("Error type", options["error_type"], key="f_error_type"),
        origin=st.multiselect("Origin", options["origin"], key="f_origin"),
        teacher=st.multiselect("Teacher", options["teacher"], key="f_teacher"),
        text=st.text_input("Search question or program", key="f_text"),
    )
    page_size = st.selectbox("Rows per page", [25, 50, 100], index=1, key="page_size")

signature = repr(filters)
if st.session_state.get("filters_sig") != signature:
    st.session_state["filters_sig"] = signature
    st.session_state["pos"] = 0

overview_tab, programs_tab, sql_tab = st.tabs(["Overview", "Programs", "SQL"])

# ---------------------------------------------------------------------- overview
with overview_tab:
    totals = ov["totals"].iloc[0]
    c1, c2, c3 = st.columns(3)
    c1.metric("Problems", f"{totals.problems:,}")
    c2.metric("Programs", f"{totals.programs:,}")
    c3.metric("Reviews", f"{totals.reviews:,}")
    st.subheader("Label distribution")
    st.bar_chart(ov["labels"].set_index("label"), horizontal=True)
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

# ---------------------------------------------------------------------- programs
with programs_tab:
    try:
        with rv.reading(DB) as store:
            total = rv.count(store, filters)
            pos = min(st.session_state.get("pos", 0), max(total - 1, 0))
            table = rv.page(store, filters, (pos // page_size) * page_size, page_size)
            current = rv.page(store, filters, pos, 1)
            detail = rv.program_detail(store, current.program_id.iloc[0]) if len(current) else None
    except StoreError as exc:
        busy(exc)
    st.write(f"**{total:,}** {'program matches' if total == 1 else 'programs match'}. Showing rows "
             f"{(pos // page_size) * page_size + 1:,}-{min((pos // page_size + 1) * page_size, total):,}.")
    st.dataframe(table, hide_index=True, key="programs_table")
    nav = st.columns([1, 1, 6])
    if nav[0].button("◀ Previous", shortcut="k", disabled=pos == 0, key="prev"):
        st.session_state["pos"] = pos - 1
        st.rerun()
    if nav[1].button("Next ▶", shortcut="j", disabled=pos >= total - 1, key="next"):
        st.session_state["pos"] = pos + 1
        st.rerun()
    nav[2].caption("keys: j next, k previous")

    if detail is None:
        st.info("No program matches these filters.")
    else:
        d = detail
        st.subheader(f"Program {pos + 1:,} of {total:,}: `{d['program_id']}`, label **{d['label'] or 'not executed'}**")
        st.markdown(f"**Question** ({d['dataset']}, {d['split']}): {d['question']}")
        gold = d["gold_text"] if d["gold_text"] is not None else d["gold"]
        a, b, c = st.columns(3)
        a.metric("Gold answer", str(gold))
        b.metric("Returned", "" if d["value"] is None else str(d["value"])[:40])
        c.metric("Teacher / origin", f"{d['teacher']} / {d['origin']}")
        line = int(d["error_line"]) if d["error_line"] is not None and d["error_line"] == d["error_line"] else None
        st.html(highlighted(d["program"], line))
        if d["error_type"] or d["error_message"]:
            where = ""
            if line and line <= len(d["program"].splitlines()):
                where = f"line {line}: `{d['program'].splitlines()[line - 1].strip()}` — "
            st.error(f"{where}{d['error_type'] or d['label']}: {d['error_message'] or ''}")
        if d["stdout"]:
            st.text_area("stdout", d["stdout"], disabled=True, key=f"stdout_{d['program_id']}")
        if d["parent_program"]:
            st.markdown("**Diff against the parent program**")
            st.code(rv.diff(d["parent_program"], d["program"]) or "(identical)", language="diff")
        st.markdown("**Sibling programs for this problem**")
        st.dataframe(d["siblings"], hide_index=True, key="siblings")
        if len(d["reviews"]):
            st.markdown("**Reviews**")
            st.dataframe(d["reviews"], hide_index=True, key="reviews")

        review_col, edit_col = st.columns(2)
        with review_col:
            st.markdown("**Annotate**")
            verdict = st.radio("Verdict", rv.VERDICTS, horizontal=True, key=f"verdict_{d['program_id']}")
            note = st.text_area("Note", key=f"note_{d['program_id']}")
            if st.button("Save review", key="save_review", type="primary"):
                try:
                    rv.add_review(DB, d["program_id"], verdict, note, reviewer)
                    st.success(f"Saved: {verdict}")
                except StoreError as exc:
                    busy(exc)
        with edit_col:
            st.markdown("**Fix and re-run**")
            edited = st.text_area("Program", d["program"], height=260, key=f"edit_{d['program_id']}")
            run_col, save_col = st.columns(2)
            if run_col.button("Run in sandbox", key="run_edit"):
                res = rv.try_program(edited)
                from pad_data.labels import label_for

                label, _ = label_for(res.status, res.value_type, res.value, d["gold"] if d["gold"] == d["gold"] else None,
                                     d["gold_text"])
                st.info(f"Run result: {label} (status {res.status}, value {res.value!r}"
                        f"{', ' + str(res.error_type) + ': ' + str(res.error_message) if res.error_type else ''})")
            if save_col.button("Save as new program", key="save_fix"):
                try:
                    out = rv.save_fix(DB, d["program_id"], edited, reviewer)
                    st.success(f"Saved fix `{out['program_id']}` (origin human): {out['label']}"
                               + ("" if out["added"] else " (this exact program was already stored)"))
                except StoreError as exc:
                    busy(exc)

# ---------------------------------------------------------------------- SQL
with sql_tab:
    st.markdown("Read-only SQL over `problems`, `programs`, `executions`, `labeled_programs`, "
                "`reviews`, `curations`... (at most 1,000 rows).")
    query = st.text_area("Query", "SELECT label, count(*) AS programs FROM labeled_programs GROUP BY 1 ORDER BY 2 DESC",
                         key="sql_query", height=120)
    if st.button("Run query", key="run_sql"):
        try:
            result = rv.run_sql(DB, query)
            st.session_state["sql_result"] = result
        except StoreError as exc:
            busy(exc)
        except Exception as exc:  # noqa: BLE001 - SQL errors are shown, not raised
            st.session_state.pop("sql_result", None)
            st.error(str(exc).splitlines()[0])
    if "sql_result" in st.session_state:
        result = st.session_state["sql_result"]
        st.dataframe(result, hide_index=True, key="sql_table")
        st.download_button("Download CSV", result.to_csv(index=False), file_name="pad-query.csv", mime="text/csv")
