"""pad review: inspect faulty programs, give verdicts (one at a time, by key, in bulk, per failure
pattern), undo them, fix and re-run programs.

Started by ``pad review [--db PATH] [--port P] [--host H] [--token T]``, which runs this file
with Streamlit (``apps/review.py`` is the source tree's entry to the same app). Data access
lives in :mod:`pad_data.review`; this file is only the UI.

- **Plain text only.** Questions, programs, error messages, names and notes are data: they are
  shown through :func:`plain` (HTML-escaped, bidi controls and invisible characters written out
  by :func:`pad_data.rules.display.reveal`) in ``st.html``, ``st.code``, ``st.text`` or table
  cells, never through Markdown, so nothing in them becomes a heading, a link, an image to fetch,
  KaTeX or colour.
- **Keys are never lost.** ``j``/``k``/``a``/``x``/``f`` are caught in the page by a small
  component that numbers each press and keeps it until the app acknowledges that number; a
  press during a rerun waits in that queue (its count shown) and is applied in order.
- **Only what changed is recomputed.** The review area is an ``st.fragment`` (a verdict reruns it,
  not the page), and cached reads are keyed on data versions the app keeps: its own verdicts
  bump the reviews version only, so the overview, filter choices and lists that do not depend on
  verdicts stay cached; a change by anything else (the store file changed under us) bumps both.
- **Views are URLs.** Every filter, the sort, the queue switch and the tab are bound to query
  parameters, so the address is the view; named views are kept beside the store.

When ``$PAD_REVIEW_TOKEN`` is set (``pad review`` sets it for a non-loopback address), no page
renders before the URL's ``?token=`` matches it; the session then remembers it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import getpass
import hmac
import html
import os
import sys
import threading
import urllib.parse
from typing import Iterator, NoReturn

import duckdb
import pandas as pd
import streamlit as st

from pad_data import review as rv
from pad_data.rules.display import hidden_count, reveal
from pad_data.rules.labels import LABELS, label_for
from pad_data.store import StoreError, resolve_path

PAGE_SIZES = [25, 50, 100]
SHORTCUTS = {"j": "next program", "k": "previous program", "a": "accept", "x": "reject", "f": "needs fix"}
VERDICT_KEYS = {"a": "accept", "x": "reject", "f": "needs-fix"}
BUSY_ICON = ":material/hourglass_top:"
SEARCH_CAP = 1_000  # a text search counts this many matches at most ("1,000+")
SEARCH_BUDGET_S = 1.5  # a text search reads programs about this long, then answers for those read ("search on")
SEARCH_FIRST_ROWS = 1 << 18  # the rows of programs a search reads first (then twice as many each time)
TABS = ["Programs", "Patterns", "Reviewers", "Overview", "SQL"]

# Catches j/k/a/x/f anywhere on the page but in a text field, numbers each press and keeps it
# until Python acknowledges its number (data.ack): presses made while the app reruns are sent
# again with the next ones, so none is lost, and the badge shows how many wait ("keys ready" once
# it listens). The listener is installed first by a bare component at the top of the page, which
# shows before any data is read, so presses made before the review area's component has loaded
# wait in the same queue and are sent when it mounts.
KEYS_LISTEN_JS = """
  const q = window.__padKeys || (window.__padKeys = { seq: 0, pending: [], listening: false, unsent: false });
  if (!q.listening) {
    q.listening = true;
    window.addEventListener('keydown', (e) => {
      if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
      const t = e.composedPath ? e.composedPath()[0] : e.target;
      if (t && t.closest && t.closest('input, textarea, select, [contenteditable="true"], [role="combobox"]')) return;
      const key = (e.key || '').toLowerCase();
      if (!['j', 'k', 'a', 'x', 'f'].includes(key)) return;
      e.preventDefault();
      q.seq += 1;
      q.pending.push({ seq: q.seq, key });
      if (q.show) q.show();
      if (q.send) q.send('keys', q.pending.slice()); else q.unsent = true;
    }, true);
  }
"""
EARLY_KEYS_JS = "export default function() {" + KEYS_LISTEN_JS + """
  document.body.classList.add('pad-keys-early');
}
"""
KEYS_JS = "export default function(component) {" + KEYS_LISTEN_JS + """
  const { data, setStateValue, parentElement } = component;
  const ack = (data && data.ack) || 0;
  q.send = setStateValue;
  document.body.classList.add('pad-keys-on');  // hides the "keys starting" note shown until now
  q.badge = parentElement.querySelector('.pad-keys');
  if (q.seq < ack) q.seq = ack;
  q.pending = q.pending.filter((k) => k.seq > ack);
  q.show = () => {
    if (!q.badge) return;
    q.badge.textContent = q.pending.length ? `⌨ ${q.pending.length} key${q.pending.length > 1 ? 's' : ''} queued`
                                           : '⌨ keys ready';
  };
  q.show();
  if (q.unsent) {  // pressed before this component could send them
    q.unsent = false;
    if (q.pending.length) q.send('keys', q.pending.slice());
  }
}
"""


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


# ---------------------------------------------------------------------- plain text
def plain(text: object, keep: str = "\n\t") -> str:
    """``text`` as HTML that shows exactly its characters: escaped, with control, bidi and
    invisible characters written out (:func:`reveal`)."""
    return html.escape(reveal("" if text is None else str(text), keep))


def one_line(text: object) -> str:
    """``text`` for a label, a chip or a cell: one line, every character visible."""
    return reveal("" if text is None else str(text), keep="")


def show(markup: str) -> None:
    """HTML pad builds itself (data inside it only through :func:`plain`)."""
    st.html(markup)


def plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its text cells as :func:`one_line` shows them (a grid cell draws bidi controls
    as a browser would: reordered)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: v if v is None or (isinstance(v, float) and v != v) else one_line(v))
    return out


def counted(df: pd.DataFrame) -> dict:
    """Column config showing integer columns with thousands separators."""
    return {c: st.column_config.NumberColumn(format="localized") for c in df.columns
            if pd.api.types.is_integer_dtype(df[c])}


def busy(exc: Exception) -> NoReturn:
    show(f'<div class="pad-busy">{plain(exc)}</div>')
    st.warning("The store is busy; try again in a moment.", icon=BUSY_ICON)
    st.stop()


# ---------------------------------------------------------------------- data versions
class ReadWriteLock:
    """Many readers or one writer: DuckDB refuses a read-only and a read-write connection to one
    file in one process, while read-only connections may run side by side."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0  # a waiting writer goes before new readers (a verdict before a read ahead)

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writer and not self._readers)
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@st.cache_resource
def _shared() -> dict:
    """What every session of this server shares: the lock its store connections take, the data
    versions (under their own lock), and the programs' details read ahead."""
    return {"store": ReadWriteLock(), "lock": threading.Lock(), "details": collections.OrderedDict(),
            "ahead": {}, "states": collections.OrderedDict()}


@contextlib.contextmanager
def reading(db: str) -> Iterator:
    with _shared()["store"].read(), rv.reading(db) as store:
        yield store


def write(db: str, fn, *args, data: bool = False, keep: str | None = None, **kwargs):
    """``fn(*args, **kwargs)``, a write to the store, with no other connection of this server
    open meanwhile; then the versions it changed move (:func:`wrote`). Reads ahead give way
    (interrupted), but for the one of program ``keep``, the program the write opens next: the
    write waits for it, as its rerun would read it anyway."""
    shared = _shared()
    with shared["lock"]:
        for con, pid in shared["ahead"].items():
            if pid != keep:
                con.interrupt()
    with shared["store"].write():
        out = fn(*args, **kwargs)
        wrote(db, data)
    return out


def versions(db: str) -> tuple[int, int]:
    """``(data, reviews)``: counters the caches are keyed on. Both move when the store file
    changed by anything but this app's own writes; :func:`wrote` moves only what a write changed."""
    shared = _shared()
    token = rv.store_token(db)
    with shared["lock"]:
        mine = shared.setdefault(db, {"file": None, "data": 0, "reviews": 0})
        if mine["file"] != token:
            mine.update(file=token, data=mine["data"] + 1, reviews=mine["reviews"] + 1)
        return mine["data"], mine["reviews"]


def wrote(db: str, data: bool = False) -> None:
    """After this app wrote to the store: verdicts (``data`` False) or programs too."""
    shared = _shared()
    with shared["lock"]:
        mine = shared.setdefault(db, {"file": None, "data": 0, "reviews": 0})
        mine.update(file=rv.store_token(db), reviews=mine["reviews"] + 1, data=mine["data"] + int(data))


def list_version(db: str, f: rv.Filters) -> tuple[int, int]:
    """The version a list of ``f`` depends on: verdicts only when ``f`` reads them."""
    data, reviews = versions(db)
    return data, reviews if f.reviews() else 0


# ---------------------------------------------------------------------- cached reads
@st.cache_data(max_entries=8, show_spinner=False)
def cached_choices(db: str, version: int) -> dict:
    with reading(db) as store:
        return rv.choices(store)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_overview(db: str, version: int) -> dict:
    with reading(db) as store:
        return rv.overview(store)


@st.cache_data(max_entries=128, show_spinner=False)
def cached_count(db: str, version: tuple, filters: rv.Filters, cap: int | None) -> int:
    with reading(db) as store:
        return rv.count(store, filters, cap)


@st.cache_data(max_entries=256, show_spinner=False)
def cached_positions(db: str, version: tuple, filters: rv.Filters, offset: int, limit: int, sort: str,
                     descending: bool) -> list[tuple[str, int]]:
    with reading(db) as store:
        return rv.page_positions(store, filters, offset, limit, sort, descending)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_search(db: str, version: tuple, filters: rv.Filters, start: int, limit: int) -> tuple[list, int | None]:
    with reading(db) as store:
        return rv.search_positions(store, filters, limit, start, SEARCH_BUDGET_S, SEARCH_FIRST_ROWS)


@st.cache_data(max_entries=256, show_spinner=False)
def cached_rows(db: str, version: int, page: tuple) -> pd.DataFrame:
    """The page's rows but their verdicts (see :func:`cached_review_state`)."""
    with reading(db) as store:
        return rv.rows(store, [pid for pid, _ in page], verdicts=False, positions=[pos for _, pos in page])


STATES_KEPT = 64


def cached_review_state(db: str, version: tuple, ids: tuple, pid: str | None) -> tuple[dict, dict]:
    """What a verdict changes on screen, in one read (:func:`pad_data.review.review_state`): the
    page's verdicts, and the open program's verdict and reviews; kept per reviews version, where
    a verdict of this app also puts what it read on its own connection (:func:`judge`)."""
    shared = _shared()
    key = (db, version, ids, pid)
    with shared["lock"]:
        if key in shared["states"]:
            return shared["states"][key]
    with reading(db) as store:
        state = rv.review_state(store, list(ids), pid)
    _keep_state(key, state)
    return state


def _keep_state(key: tuple, state: tuple[dict, dict]) -> None:
    shared = _shared()
    with shared["lock"]:
        shared["states"][key] = state
        while len(shared["states"]) > STATES_KEPT:
            shared["states"].popitem(last=False)


DETAILS_KEPT = 256


def static_detail(db: str, version: int, pid: str, position: int | None = None, seq: int | None = None,
                  ahead: bool = False) -> dict | None:
    """A program's detail but its reviews, kept per data version (a verdict does not change it),
    so the programs read ahead by :func:`read_ahead` open at once; ``position`` and ``seq``: its
    row and execution as the list read them (:func:`pad_data.review.program_detail`); ``ahead``:
    such a read, which a write interrupts (:func:`write`)."""
    shared = _shared()
    key = (db, version, pid)
    with shared["lock"]:
        if key in shared["details"]:
            return shared["details"][key]
    with reading(db) as store:
        if ahead:
            with shared["lock"]:
                shared["ahead"][store.con] = pid
        try:
            d = rv.program_detail(store, pid, reviews=False, position=position, seq=seq)
        finally:
            with shared["lock"]:
                shared["ahead"].pop(store.con, None)
    with shared["lock"]:
        shared["details"][key] = d
        while len(shared["details"]) > DETAILS_KEPT:
            shared["details"].popitem(last=False)
    return d


def read_ahead(db: str, version: int, pids: list[tuple[str, int, int | None]]) -> None:
    """Read the details of the programs a reviewer opens next, in the background (a thread the
    process waits for when it exits: DuckDB aborts a process that exits in the middle of a read)."""
    def work() -> None:
        for pid, position, seq in pids:
            try:
                static_detail(db, version, pid, position, seq, ahead=True)
            except (StoreError, duckdb.Error):  # busy, or interrupted by a write
                return

    thread = threading.Thread(target=work, name="pad-review-read-ahead")
    thread.start()


@st.cache_data(max_entries=32, show_spinner=False)
def cached_patterns(db: str, version: tuple, filters: rv.Filters, by: str) -> pd.DataFrame:
    with reading(db) as store:
        return rv.patterns(store, filters, by)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_reviewers(db: str, version: tuple) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    with reading(db) as store:
        return rv.reviewer_counts(store), rv.conflicts(store), store.scalar("SELECT count(*) FROM current_reviews")


# ---------------------------------------------------------------------- rendering helpers
def highlighted(program: str, line: int | None, first: int = 1) -> str:
    """Lines of a program (already :func:`reveal`-ed) as highlighted HTML, numbered from ``first``,
    ``line`` (absolute) marked."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    fmt = HtmlFormatter(noclasses=True, linenos="inline", linenostart=first, style="default",
                        hl_lines=[line - first + 1] if line else [], hl_color="#ffd7d7")
    return highlight(program, PythonLexer(stripnl=False, ensurenl=True), fmt)


def program_html(program: str, line: int | None, whole: bool = False) -> str:
    """The program, folded around ``line`` when long (:func:`pad_data.review.fold`)."""
    lines = reveal(program).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    ranges = [(1, len(lines))] if whole else rv.fold(len(lines), line)
    parts, shown = [], 0
    for a, b in ranges:
        if a > shown + 1:
            parts.append(_folded(shown + 1, a - 1))
        parts.append(highlighted("\n".join(lines[a - 1:b]), line if line and a <= line <= b else None, a))
        shown = b
    if shown < len(lines):
        parts.append(_folded(shown + 1, len(lines)))
    return f'<div class="pad-program" style="font-size:0.9em;overflow-x:auto">{"".join(parts)}</div>'


def _folded(a: int, b: int) -> str:
    return (f'<div class="pad-fold" style="color:#555;background:#f0f2f6;padding:2px 8px;font-family:monospace">'
            f'⋯ lines {a:,}-{b:,} folded ({b - a + 1:,} lines)</div>')


def error_html(d: dict, line: int | None) -> str:
    where = ""
    program_lines = d["program"].split("\n")
    if line and line <= len(program_lines):
        where = f'line {line:,}: <code>{plain(program_lines[line - 1].strip(), keep="")}</code> — '
    return (f'<div class="pad-error" style="background:#fdecea;color:#7a1c1c;padding:10px 14px;border-radius:6px;'
            f'white-space:pre-wrap;overflow-wrap:anywhere">{where}<b>{plain(d["error_type"] or d["label"])}</b>: '
            f'{plain(d["error_message"] or "")}</div>')


# ---------------------------------------------------------------------- filters and views
def filter_bar(db: str, options: dict) -> tuple[rv.Filters, str, bool, int, str]:
    """The filters, sort, queue switch and reviewer, each bound to the URL (its key is the query
    parameter): ``(filters, sort, descending, page size, reviewer)``."""
    show_one = lambda v: one_line(v)  # noqa: E731 - a chip shows the value as text
    cols = st.columns([1.2, 1.2, 1.2, 1.4, 1])
    dataset = cols[0].multiselect("Dataset", options["dataset"], key="dataset", format_func=show_one,
                                  bind="query-params")
    label = cols[1].multiselect("Label", [l for l in LABELS if l in options["label"]], key="label",
                                bind="query-params")
    error_type = cols[2].multiselect("Error type", options["error_type"], key="error", format_func=show_one,
                                     bind="query-params")
    teacher = cols[3].multiselect("Teacher", options["teacher"], key="teacher", format_func=show_one,
                                  bind="query-params")
    verdict = cols[4].multiselect("Verdict", options["verdict"], key="verdict", bind="query-params")
    cols = st.columns([2.6, 1, 0.9, 0.7, 1, 1.3])
    text = cols[0].text_input("Search question or program (literal text)", key="q", bind="query-params")
    sort = cols[1].selectbox("Sort by", list(rv.SORTS), key="sort", bind="query-params")
    descending = cols[2].toggle("Descending", key="desc", bind="query-params")
    page_size = cols[3].selectbox("Rows", PAGE_SIZES, index=1, key="rows", bind="query-params")
    reviewer = cols[4].text_input("Reviewer", value=os.environ.get("PAD_REVIEWER") or getpass.getuser(),
                                  key="reviewer")
    queue = cols[5].toggle("My queue", key="queue", help="Only programs you have not judged yet", bind="query-params")
    with st.expander("More filters: origin, conflicts, failure pattern, saved views", key="more_open"):
        cols = st.columns([1.2, 1, 1, 3])
        origin = cols[0].multiselect("Origin", options["origin"], key="origin", format_func=show_one,
                                     bind="query-params")
        conflicts = cols[1].toggle("Conflicts between reviewers", key="conflicts", bind="query-params")
        pattern_by = cols[2].selectbox("Pattern of", list(rv.PATTERNS), key="pattern_by", bind="query-params")
        pattern = cols[3].text_input("Failure pattern (set from the Patterns tab)", key="pattern",
                                     bind="query-params")
        views_bar(db)
    filters = rv.Filters(dataset=dataset, label=label, error_type=error_type, origin=origin, teacher=teacher,
                         verdict=verdict, text=text, unreviewed_by=(reviewer or "") if queue else None,
                         conflicts=conflicts, pattern=pattern or None, pattern_by=pattern_by)
    return filters, sort, descending, page_size, reviewer


def views_bar(db: str) -> None:
    """Named views (a view is the page's query string) kept beside the store."""
    try:
        views = rv.load_views(db)
    except ValueError as exc:
        show(f'<div class="pad-error">{plain(exc)}</div>')
        views = {}
    cols = st.columns([2, 2, 1])
    if views:
        name = cols[0].selectbox("Saved views", [""] + sorted(views), key="view_pick", format_func=one_line)
        if name:
            link = "?" + views[name]
            token = st.session_state.get("_pad_token")
            if token:  # a new page is a new session: it needs the token again (never saved in a view)
                link += "&token=" + urllib.parse.quote(token, safe="")
            show(f'<div style="padding-top:2em">Open view: <a href="{html.escape(link, quote=True)}" target="_self">'
                 f'{plain(name)}</a> · <code>{plain(link)}</code></div>')
    new = cols[1].text_input("Save this view as", key="view_name")
    if cols[2].button("Save view", key="view_save", disabled=not new.strip()):
        query = "&".join(f"{k}={v}" for k, vals in _bound_params().items() for v in vals)
        try:
            rv.save_view(db, new.strip(), query)
            show(f'<div class="pad-saved" style="color:#1b6b2f">Saved the view {plain(new.strip(), keep="")}.</div>')
        except (OSError, ValueError) as exc:
            show(f'<div class="pad-error">{plain(exc)}</div>')


def _bound_params() -> dict[str, list[str]]:
    """The query parameters of the view now (the token is never part of a view)."""
    return {k: [urllib.parse.quote(v, safe="") for v in st.query_params.get_all(k)] for k in st.query_params.keys()
            if k != "token"}


# ---------------------------------------------------------------------- the review area
@dataclasses.dataclass(frozen=True)
class Ctx:
    db: str
    filters: rv.Filters
    sort: str
    descending: bool
    page_size: int
    reviewer: str

    def count(self) -> tuple[int, bool]:
        """``(programs matching, exact)``: a text search counts up to :data:`SEARCH_CAP`, from
        the same scan as its first pages (:meth:`matches`), and only among the programs read
        when it stopped early (:meth:`search`: not exact)."""
        if self.filters.text.strip():
            found, unread = self.search()
            return (SEARCH_CAP, False) if len(found) > SEARCH_CAP else (len(found), unread is None)
        return cached_count(self.db, list_version(self.db, self.filters), self.filters, None), True

    def search(self) -> tuple[list[tuple[str, int]], int | None]:
        """A text search's first :data:`SEARCH_CAP` + 1 matches in the stored order, and the first
        row of ``programs`` not read (None: all read): one scan, which stops there or after
        :data:`SEARCH_BUDGET_S` per round; each "Search on" adds a round from where the last stopped."""
        rounds = st.session_state.get("search_rounds", {}).get(repr(self.filters), 1)
        found, row = [], 0
        for _ in range(rounds):
            more, row = cached_search(self.db, list_version(self.db, self.filters), self.filters, row,
                                      SEARCH_CAP + 1 - len(found))
            found += more
            if row is None:
                break
        return found, row

    def matches(self) -> list[tuple[str, int]]:
        return self.search()[0]

    def page(self, start: int) -> list[tuple[str, int]]:
        """``(program_id, position)`` of the page from ``start``."""
        if self.filters.text.strip() and self.sort == "stored" and not self.descending:
            found = self.matches()
            if start + self.page_size <= len(found) or len(found) <= SEARCH_CAP:
                return found[start:start + self.page_size]
        return cached_positions(self.db, list_version(self.db, self.filters), self.filters, start,
                                self.page_size, self.sort, self.descending)

    def ids(self, start: int) -> list[str]:
        return [pid for pid, _ in self.page(start)]

    def at(self, pos: int) -> tuple[str, int] | None:
        """``(program_id, row in programs)`` of the list's position ``pos``."""
        page = self.page((pos // self.page_size) * self.page_size)
        return page[pos % self.page_size] if pos % self.page_size < len(page) else None

    def pid_at(self, pos: int) -> str | None:
        found = self.at(pos)
        return found[0] if found else None


def _filters_changed(ctx: Ctx) -> None:
    """Back to the first program when the list changed (another filter, sort or page size)."""
    signature = repr((ctx.filters, ctx.sort, ctx.descending, ctx.page_size))
    if st.session_state.get("filters_sig") != signature:
        st.session_state["filters_sig"] = signature
        st.session_state["pos"] = 0
        st.session_state.pop("bulk_pending", None)


def judge(ctx: Ctx, pos: int, verdict: str, note: str | None = None) -> None:
    """``verdict`` for the program at ``pos``; the next program opens (in the queue, the one that
    takes its place)."""
    found = ctx.at(pos)
    if found is None:
        return
    pid, position = found
    batch = rv.new_batch()
    following = ctx.pid_at(pos + 1)
    # a list that does not read verdicts stays as it is: the rerun shows pos + 1 on that page, whose
    # review state the write reads on its own connection (one connection saved per verdict)
    shown = None if ctx.filters.reviews() or following is None else \
        tuple(ctx.ids(((pos + 1) // ctx.page_size) * ctx.page_size))
    state = write(ctx.db, _judge_and_read, ctx.db, verdict, note, ctx.reviewer, pid, position, batch, shown,
                  following, keep=following)
    if state is not None:
        _keep_state((ctx.db, versions(ctx.db), shown, following), state)
    st.session_state.setdefault("undo_stack", []).append({"batch": batch, "what": f"{verdict} of {pid}", "pos": pos})
    st.session_state["saved"] = f"Saved {verdict} for {pid}."
    if ctx.filters.unreviewed_by is None:
        st.session_state["pos"] = pos + 1


def _judge_and_read(db: str, verdict: str, note: str | None, reviewer: str, pid: str, position: int, batch: str,
                    shown: tuple | None, following: str | None) -> tuple[dict, dict] | None:
    """One program's verdict, then (with ``shown``, a page's ids) the review state of that page
    and of ``following``, on the same connection."""
    with rv.writing(db) as st:
        with st.transaction():
            rv.judge(st, verdict, note, reviewer, program_ids=[pid], batch=batch, positions=[position])
        return rv.review_state(st, list(shown), following) if shown is not None else None


def apply_keys(ctx: Ctx, total: int) -> None:
    """The key presses not yet applied, in the order they were made."""
    done = st.session_state.get("keys_done", 0)
    state = st.session_state.get("pad_keys") or {}
    pressed = [k for k in (state.get("keys") or []) if isinstance(k, dict) and int(k.get("seq", 0)) > done]
    for k in sorted(pressed, key=lambda k: int(k["seq"])):
        pos = st.session_state.get("pos", 0)
        key = k.get("key")
        if key == "j":
            st.session_state["pos"] = min(pos + 1, max(total - 1, 0))
        elif key == "k":
            st.session_state["pos"] = max(pos - 1, 0)
        elif key in VERDICT_KEYS and total:
            judge(ctx, pos, VERDICT_KEYS[key])
            total = ctx.count()[0]
        st.session_state["keys_done"] = int(k["seq"])


def _keys_component():
    return st.components.v2.component("pad_review_keys", html='<span class="pad-keys" style="color:#8a5a00"></span>',
                                      js=KEYS_JS)


@st.cache_resource
def keys_component():
    return _keys_component()


@st.cache_resource
def early_keys_component():
    return st.components.v2.component("pad_review_keys_early", html="<span></span>", js=EARLY_KEYS_JS)


def move(delta: int | None = None, to: int | None = None) -> None:
    """Button and jump callbacks: set the position before the rerun renders it."""
    pos = st.session_state.get("pos", 0)
    st.session_state["pos"] = max(0, (pos + delta) if delta is not None else to)


@st.fragment
def review_area(ctx: Ctx) -> None:
    """The list, the open program and its verdicts: a verdict or a key reruns only this."""
    try:
        total, exact = ctx.count()
        apply_keys(ctx, total)
        total, exact = ctx.count()
        pos = min(st.session_state.get("pos", 0), max(total - 1, 0))
        st.session_state["pos"] = pos
        start = (pos // ctx.page_size) * ctx.page_size
        page = ctx.page(start)
        ids = [pid for pid, _ in page]
        data, _ = versions(ctx.db)
        table = cached_rows(ctx.db, data, tuple(page)).copy()
        seqs = {p: None if pd.isna(s) else int(s) for p, s in zip(table.program_id, table.pop("seq"))}
        pid, position = (ctx.at(pos) or (None, None)) if total else (None, None)
        page_verdicts, reviews = cached_review_state(ctx.db, versions(ctx.db), tuple(ids), pid)
        table["verdict"] = table.program_id.map(page_verdicts)
    except StoreError as exc:
        busy(exc)
    if "store_error" in st.session_state:
        show(f'<div class="pad-busy">{plain(st.session_state.pop("store_error"))}</div>')
        st.warning("Not saved: the store is busy; try again in a moment.", icon=BUSY_ICON)
    # the key script mounts a moment after the page shows: until then, say so
    show('<style>body.pad-keys-on .pad-keys-wait{display:none}</style>'
         '<span class="pad-keys-wait" style="color:#8a5a00">⌨ keys starting…</span>')
    keys_component()(key="pad_keys", data={"ack": st.session_state.get("keys_done", 0)},
                     default={"keys": []}, on_keys_change=lambda: None)
    _progress(ctx, total, exact)
    left, right = st.columns([2, 3], gap="medium")
    with left:
        clicked, selected = _program_table(ctx, table, total, exact, pos, start)
        if clicked != pos:  # a row just selected: its program opens
            pos, (pid, position) = clicked, ctx.at(clicked) or (None, None)
            try:
                reviews = cached_review_state(ctx.db, versions(ctx.db), (), pid)[1]
            except StoreError as exc:
                busy(exc)
        _nav_bar(ctx, pos, total, exact)
        bulk_panel(ctx, total, exact, selected)
    with right:
        if not total:
            st.info("No program matches these filters." if exact else "No match yet: search on to read more.")
            return
        try:
            d = static_detail(ctx.db, data, pid, position, seqs.get(pid)) if pid else None
        except StoreError as exc:
            busy(exc)
        if d is None:
            st.info("This program is gone from the store.")
            return
        d = {**d, **reviews}
        _verdict_bar(ctx, d, pos, total, exact)
        _program_view(d)
        if st.toggle("Fix and re-run", key="fix_open"):  # built only when on: the whole program in a text box
            with st.container(border=True):
                _fix_panel(ctx, d)
    # after the page is out, so the read does not compete with it
    # a neighbour on another page: its labels are looked for near this program's (stored together)
    read_ahead(ctx.db, data, [(*p, seqs.get(p[0], seqs.get(pid))) for p in (
        ctx.at(pos + 1) if pos + 1 < total else None, ctx.at(pos - 1) if pos else None) if p])


def _progress(ctx: Ctx, total: int, exact: bool) -> None:
    n = f"{total:,}{'' if exact else '+'}"
    line = f"<b>{n}</b> {'program matches' if total == 1 and exact else 'programs match'}"
    if ctx.filters.unreviewed_by is not None:
        everything = dataclasses.replace(ctx.filters, unreviewed_by=None)
        if everything.text.strip():  # counted as the queue is: one capped scan within the search's budget
            all_n, all_exact = dataclasses.replace(ctx, filters=everything).count()
        else:
            all_n, all_exact = cached_count(ctx.db, list_version(ctx.db, everything), everything, None), True
        who, of = plain(ctx.reviewer or "(no name)"), f"{all_n:,}{'' if all_exact else '+'}"
        if exact and all_exact:
            done = max(all_n - total, 0)
            line = f"Queue of <b>{who}</b>: <b>{done:,}</b> done · <b>{n}</b> remaining of {of}"
            st.progress(done / all_n if all_n else 1.0)
        else:  # a count of a search not read to the end: nothing to take the queue's from
            line = f"Queue of <b>{who}</b>: <b>{n}</b> remaining of {of}"
    found, unread = ctx.search() if ctx.filters.text.strip() else ([], None)
    unread = unread if len(found) <= SEARCH_CAP else None
    if unread is not None:  # an honest partial answer: what the programs read so far hold
        line = (f"No match in the first <b>{unread:,}</b> programs" if not total else
                f"<b>{total:,}</b> {'program matches' if total == 1 else 'programs match'} in the first "
                f"<b>{unread:,}</b> programs")
    show(f'<div class="pad-count">{line}.</div>')
    if unread is not None:
        st.button("Search on", key="search_on", on_click=_search_on, args=(ctx.filters,))


def _search_on(filters: rv.Filters) -> None:
    """One more round for the search, and for a queue's count of what it is "of" with it."""
    rounds = st.session_state.setdefault("search_rounds", {})
    for key in {repr(filters), repr(dataclasses.replace(filters, unreviewed_by=None))}:
        rounds[key] = rounds.get(key, 1) + 1


def _program_table(ctx: Ctx, table: pd.DataFrame, total: int, exact: bool, pos: int,
                   start: int) -> tuple[int, list[str]]:
    """The page as a selectable table: ``(pos, selected program ids)``; a row just selected
    becomes the open program."""
    end = min(start + ctx.page_size, total) if exact else start + len(table)
    show(f'<div class="pad-rows">Rows {start + 1 if total else 0:,}-{end:,}; select a row to open it.</div>')
    nonce = st.session_state.get("table_nonce", 0)
    key = f"programs_table_{abs(hash((repr(ctx.filters), ctx.sort, ctx.descending, start, ctx.page_size, nonce)))}"
    event = st.dataframe(plain_frame(table), hide_index=True, key=key, on_select="rerun",
                         selection_mode="multi-row", column_config=counted(table), height=400)
    rows = list(event.selection.rows) if event is not None else []
    before = set(st.session_state.get("_selected_rows", {}).get(key, []))
    st.session_state["_selected_rows"] = {key: rows}
    opened = [r for r in rows if r not in before]
    if opened and opened[-1] < len(table):
        pos = start + opened[-1]
        st.session_state["pos"] = pos
    return pos, [table.program_id.iloc[r] for r in rows if r < len(table)]


def _nav_bar(ctx: Ctx, pos: int, total: int, exact: bool) -> None:
    size = ctx.page_size
    page, pages = pos // size, -(-total // size)
    nav = st.columns(4)
    nav[0].button("◀ Page", key="prev_page", disabled=page == 0, on_click=move, kwargs={"to": (page - 1) * size},
                  width="stretch")
    nav[1].button("Page ▶", key="next_page", disabled=page + 1 >= pages, on_click=move,
                  kwargs={"to": (page + 1) * size}, width="stretch")
    nav[2].button("◀ Previous", key="prev", disabled=pos == 0, on_click=move, args=(-1,), width="stretch")
    nav[3].button("Next ▶", key="next", disabled=pos >= total - 1, on_click=move, args=(1,), width="stretch")
    a, go, b = st.columns([1, 0.5, 2], vertical_alignment="bottom")
    if total:
        # no on_change: a rerun asked for before the browser had the new value would send the
        # old one back as a change, and move the list backwards
        st.session_state["jump"] = pos + 1
        a.number_input("Go to program #", min_value=1, max_value=total, step=1, key="jump")
        go.button("Go", key="jump_go", on_click=lambda: move(to=int(st.session_state["jump"]) - 1))
    b.caption(f"Page {page + 1:,} of {pages:,}{'' if exact else '+'}. Keys: "
              + " · ".join(f"{k} {what}" for k, what in SHORTCUTS.items())
              + " (a verdict key saves and opens the next program; keys pressed while the app works are queued)")


def bulk_panel(ctx: Ctx, total: int, exact: bool, selected: list[str]) -> None:
    """A verdict for every program of the filter, or for the selected rows, after a confirmation;
    the panel stays open (its state is kept under its key) and a saved bulk verdict can be undone."""
    if "bulk_done" in st.session_state:
        st.success(st.session_state.pop("bulk_done"))
    if not st.toggle("Bulk verdict", key="bulk_open"):  # stays on after a save or a choice
        return
    with st.container(border=True):
        scope = st.radio(f"Programs: {total:,}{'' if exact else '+'} match the filter, {len(selected):,} rows are "
                         "selected", ["filter", "selected"], horizontal=True, key="bulk_scope",
                         format_func={"filter": "all matching the filter", "selected": "the selected rows"}.get)
        verdict = st.radio("Verdict", rv.VERDICTS, horizontal=True, key="bulk_verdict")
        note = st.text_input("Note", key="bulk_note")
        n = total if scope == "filter" else len(selected)
        if st.button("Apply…", key="bulk_apply", disabled=n == 0 or (scope == "filter" and not exact)):
            st.session_state["bulk_pending"] = {"scope": scope, "verdict": verdict, "note": note, "n": n,
                                                "ids": list(selected)}
        if scope == "filter" and not exact:
            st.caption(f"A search matching more than {SEARCH_CAP:,} programs, or not read to the end: narrow it "
                       "for a bulk verdict.")
        pending = st.session_state.get("bulk_pending")
        if pending:
            show(f'<div class="pad-confirm">Give the verdict <b>{pending["verdict"]}</b> to '
                 f'<b>{pending["n"]:,}</b> programs (reviewer {plain(ctx.reviewer or "none")})?</div>')
            yes, no = st.columns(2)
            yes.button(f"Confirm: {pending['n']:,} programs", key="bulk_confirm", type="primary",
                       on_click=_bulk_confirm, args=(ctx,))
            no.button("Cancel", key="bulk_cancel", on_click=lambda: st.session_state.pop("bulk_pending", None))


def _bulk_confirm(ctx: Ctx) -> None:
    """The confirmed bulk verdict (a callback: it runs before the rerun that shows it)."""
    pending = st.session_state.pop("bulk_pending", None)
    if not pending:
        return
    batch = rv.new_batch()
    by = {"filters": ctx.filters} if pending["scope"] == "filter" else {"program_ids": pending["ids"]}
    try:
        done = write(ctx.db, rv.add_verdicts, ctx.db, pending["verdict"], pending["note"], ctx.reviewer,
                     batch=batch, **by)
    except StoreError as exc:
        st.session_state["store_error"] = str(exc)
        return
    st.session_state.setdefault("undo_stack", []).append(
        {"batch": batch, "what": f"{pending['verdict']} of {done:,} programs (bulk)",
         "pos": st.session_state.get("pos", 0)})
    st.session_state["bulk_done"] = f"Saved {pending['verdict']} for {done:,} programs."
    st.session_state["table_nonce"] = st.session_state.get("table_nonce", 0) + 1  # the rows deselected


def _judge_click(ctx: Ctx, pos: int, verdict: str, pid: str) -> None:
    try:
        judge(ctx, pos, verdict, st.session_state.get(f"note_{pid}") or None)
    except StoreError as exc:
        st.session_state["store_error"] = str(exc)


def _undo_click(ctx: Ctx) -> None:
    stack = st.session_state.get("undo_stack") or []
    if not stack:
        return
    last = stack.pop()
    try:
        write(ctx.db, rv.undo, ctx.db, last["batch"])
    except StoreError as exc:
        stack.append(last)
        st.session_state["store_error"] = str(exc)
        return
    st.session_state["pos"] = last["pos"]
    st.session_state["saved"] = f"Undone: {last['what']}."


def _verdict_bar(ctx: Ctx, d: dict, pos: int, total: int, exact: bool) -> None:
    """The open program's title, verdict buttons, note, undo and the key queue's badge."""
    show(f'<h3 class="pad-title" style="margin:0">Program {pos + 1:,} of {total:,}{"" if exact else "+"}: '
         f'<code>{plain(d["program_id"])}</code>, label <b>{plain(d["label"] or "not executed")}</b></h3>')
    buttons = st.columns([1, 1, 1, 1.6])
    for col, (verdict, label) in zip(buttons, (("accept", "Accept (a)"), ("reject", "Reject (x)"),
                                               ("needs-fix", "Needs fix (f)"))):
        col.button(label, key=f"verdict_{verdict}", width="stretch", on_click=_judge_click,
                   args=(ctx, pos, verdict, d["program_id"]))
    stack = st.session_state.get("undo_stack") or []
    buttons[3].button(f"Undo {stack[-1]['what']}" if stack else "Undo", key="undo", disabled=not stack,
                      width="stretch", on_click=_undo_click, args=(ctx,))
    if "saved" in st.session_state:
        show(f'<div class="pad-saved" style="color:#1b6b2f">{plain(st.session_state.pop("saved"))}</div>')
    st.text_input("Note (saved with the button's verdict)", key=f"note_{d['program_id']}")


def _program_view(d: dict) -> None:
    """The question, answers, error, program (folded when long), stdout, diffs, siblings, reviews."""
    gold = d["gold_text"] if d["gold_text"] is not None else d["gold"]
    value = "" if d["value"] is None else str(d["value"])
    hidden = sum(hidden_count(str(d[k] or "")) for k in ("program", "question", "error_message", "stdout"))
    warn = (f'<div class="pad-hidden" style="background:#fff4ce;padding:6px 10px;border-radius:6px">{hidden:,} '
            'bidi control or invisible character(s) in this program or its question: shown as \\uXXXX</div>'
            if hidden else "")
    show(f"""<div class="pad-meta">{warn}
<div><b>Question</b> ({plain(d['dataset'], keep='')}, {plain(d['split'], keep='')}):</div>
<div class="pad-question" style="white-space:pre-wrap;overflow-wrap:anywhere">{plain(d['question'])}</div>
<div style="margin-top:6px"><b>Gold answer</b> <code>{plain(gold, keep='')}</code> · <b>Returned</b>
<code>{plain(value[:200], keep='')}</code></div>
<div><b>Teacher</b> <code>{plain(d['teacher'], keep='')}</code> · <b>Origin</b> <code>{plain(d['origin'], keep='')}</code>
 · <b>Verdict</b> {plain(d['verdict'] or 'none yet')}</div></div>""")
    line = int(d["error_line"]) if d["error_line"] is not None and d["error_line"] == d["error_line"] else None
    if d["error_type"] or d["error_message"]:
        show(error_html(d, line))
    n_lines = len(d["program"].rstrip("\n").split("\n"))
    whole = False
    if len(rv.fold(n_lines, line)) != 1 or rv.fold(n_lines, line)[0] != (1, n_lines):
        whole = st.toggle(f"Show all {n_lines:,} lines", key=f"whole_{d['program_id']}")
    show(program_html(d["program"], line, whole))
    if d["stdout"]:
        st.code(reveal(d["stdout"]), language=None)
    if d["parent_program"]:
        show("<b>Diff against the parent program</b>")
        st.code(reveal(rv.diff(d["parent_program"], d["program"])) or "(identical)", language="diff")
    sibling = d.get("correct_sibling")
    # built only when on, and on from program to program once switched on
    if sibling and st.toggle(f"Beside a correct sibling ({sibling['program_id']})", key="sibling_open"):
        with st.container(border=True):
            a, b = st.columns(2)
            a.code(reveal(d["program"]), language="python")
            b.code(reveal(sibling["program"]), language="python")
            st.code(reveal(rv.diff(sibling["program"], d["program"], ("correct sibling", "this"))) or "(identical)",
                    language="diff")
    show("<b>Sibling programs for this problem</b>")
    st.dataframe(plain_frame(d["siblings"]), hide_index=True, key="siblings")
    if len(d["reviews"]):
        show("<b>Reviews</b> (<code>current</code>: each reviewer's verdict now; the others are history)")
        st.dataframe(plain_frame(d["reviews"]), hide_index=True, key="reviews")


def _fix_panel(ctx: Ctx, d: dict) -> None:
    """Edit the program, run the edit in the sandbox, or save it as a new program."""
    edited = st.text_area("Program", d["program"], height=260, key=f"edit_{d['program_id']}")
    run_col, save_col = st.columns(2)
    if run_col.button("Run in sandbox", key="run_edit"):
        res = rv.try_program(edited)
        label, _ = label_for(res.status, res.value_type, res.value, d["gold"] if d["gold"] == d["gold"] else None,
                             d["gold_text"], d.get("gold_choice"))
        err = f", {res.error_type}: {res.error_message}" if res.error_type else ""
        show(f'<div class="pad-run">Run result: <b>{plain(label)}</b> (status {plain(res.status)}, value '
             f'<code>{plain(repr(res.value), keep="")}</code>{plain(err)})</div>')
    if save_col.button("Save as new program", key="save_fix"):
        try:
            out = write(ctx.db, rv.save_fix, ctx.db, d["program_id"], edited, ctx.reviewer, data=True)
        except StoreError as exc:
            busy(exc)
        show(f'<div class="pad-run">Saved fix <code>{plain(out["program_id"])}</code> (origin human): '
             f'{plain(out["label"])}{"" if out["added"] else " (this exact program was already stored)"}</div>')


# ---------------------------------------------------------------------- other tabs
def patterns_tab(db: str, filters: rv.Filters, reviewer: str) -> None:
    """Failing programs of the current filters grouped by error pattern: open a group in the
    Programs tab, or give the whole group one verdict."""
    by = st.radio("Group by", list(rv.PATTERNS), horizontal=True, key="pattern_group_by",
                  format_func={"message": "error message (names and numbers masked)",
                               "line": "failing line (numbers and strings masked)"}.get)
    base = dataclasses.replace(filters, pattern=None)
    try:
        groups = cached_patterns(db, list_version(db, base), base, by)
    except StoreError as exc:
        busy(exc)
    show(f"<div><b>{len(groups):,}</b> patterns among the failing programs of the current filters "
         f"({int(groups.programs.sum()) if len(groups) else 0:,} programs).</div>")
    event = st.dataframe(plain_frame(groups), hide_index=True, key=f"patterns_{by}", on_select="rerun",
                         selection_mode="single-row", column_config=counted(groups))
    picked = list(event.selection.rows) if event is not None else []
    if not picked:
        st.caption("Select a pattern to open its programs or judge them all.")
        return
    g = groups.iloc[picked[0]]
    show(f'<div>Pattern <code>{plain(g.pattern, keep="")}</code>: <b>{int(g.programs):,}</b> programs.</div>')
    a, b, c = st.columns([1, 1, 2])
    a.button("Open in Programs", key="pattern_open", on_click=_open_pattern, args=(g.pattern, by))
    verdict = b.selectbox("Verdict for the group", rv.VERDICTS, key="pattern_verdict")
    if c.button(f"Give {verdict} to all {int(g.programs):,}", key="pattern_apply", type="primary"):
        batch = rv.new_batch()
        try:
            n = write(db, rv.add_verdicts, db, verdict, f"pattern: {g.pattern}", reviewer,
                      filters=dataclasses.replace(base, pattern=g.pattern, pattern_by=by), batch=batch)
        except StoreError as exc:
            busy(exc)
        st.session_state.setdefault("undo_stack", []).append(
            {"batch": batch, "what": f"{verdict} of {n:,} programs (pattern)", "pos": st.session_state.get("pos", 0)})
        st.success(f"Saved {verdict} for {n:,} programs.")


def _open_pattern(pattern: str, by: str) -> None:
    st.session_state.update(pattern=pattern, pattern_by=by, tab="Programs")


def reviewers_tab(db: str) -> None:
    try:
        counts, conflicts, _ = cached_reviewers(db, versions(db))
    except StoreError as exc:
        busy(exc)
    st.subheader("Per reviewer")
    st.dataframe(plain_frame(counts), hide_index=True, key="reviewer_counts", column_config=counted(counts))
    st.subheader("Conflicts")
    show(f"<div><b>{len(conflicts):,}</b> programs (latest first, up to 200) where reviewers' current verdicts "
         "differ; the Programs tab's <i>Conflicts between reviewers</i> switch lists them all.</div>")
    st.dataframe(plain_frame(conflicts), hide_index=True, key="conflicts_table")


def overview_tab(db: str) -> None:
    import altair as alt

    data, reviews = versions(db)
    try:
        ov = cached_overview(db, data)
        _, _, n_reviews = cached_reviewers(db, (data, reviews))
    except StoreError as exc:
        busy(exc)
    totals = ov["totals"].iloc[0]
    c1, c2, c3 = st.columns(3)
    c1.metric("Problems", f"{totals.problems:,}")
    c2.metric("Programs", f"{totals.programs:,}")
    c3.metric("Reviewed programs (per reviewer)", f"{n_reviews:,}")
    st.subheader("Label distribution")
    labels = ov["labels"]
    chart = alt.Chart(labels).encode(
        x=alt.X("programs:Q", scale=alt.Scale(type="symlog"), title="programs (log scale)"),  # symlog: bars from 0
        y=alt.Y("label:N", sort=None, title=None), tooltip=["label", alt.Tooltip("programs:Q", format=",")])
    st.altair_chart(chart.mark_bar() + chart.mark_text(align="left", dx=3).encode(
        text=alt.Text("programs:Q", format=",")), width="stretch")
    st.dataframe(plain_frame(labels), hide_index=True, key="ov_labels", column_config=counted(labels))
    st.subheader("Per dataset and teacher")
    st.dataframe(plain_frame(ov["by_dataset"]), hide_index=True, key="ov_by_dataset",
                 column_config=counted(ov["by_dataset"]))
    left, right = st.columns(2)
    with left:
        st.subheader("Error types")
        st.dataframe(plain_frame(ov["error_types"]), hide_index=True, key="ov_errors",
                     column_config=counted(ov["error_types"]))
    with right:
        st.subheader("Execution time")
        st.bar_chart(ov["durations"].set_index("duration"))


def sql_tab(db: str) -> None:
    st.markdown("Read-only SQL over `problems`, `programs`, `executions`, `labeled_programs`, "
                "`reviews`, `current_reviews`, `program_verdicts`, `curations`... (one SELECT, at most 1,000 rows).")
    query = st.text_area("Query", "SELECT label, count(*) AS programs FROM program_labels GROUP BY 1 ORDER BY 2 DESC",
                         key="sql_query", height=120)
    if st.button("Run query", key="run_sql"):
        try:
            with _shared()["store"].write():  # its connection's settings differ from the others'
                st.session_state["sql_result"] = rv.run_sql(db, query)
        except StoreError as exc:
            busy(exc)
        except Exception as exc:  # noqa: BLE001 - SQL errors are shown, not raised
            st.session_state.pop("sql_result", None)
            show(f'<div class="pad-error" style="background:#fdecea;color:#7a1c1c;padding:10px 14px;'
                 f'border-radius:6px">{plain(str(exc).splitlines()[0])}</div>')
    if "sql_result" in st.session_state:
        result = st.session_state["sql_result"]
        st.dataframe(plain_frame(result), hide_index=True, key="sql_table")
        st.download_button("Download CSV", result.to_csv(index=False), file_name="pad-query.csv", mime="text/csv")


def main() -> None:
    st.set_page_config(page_title="pad review", layout="wide", menu_items={"Get help": None,
                                                                          "Report a bug": None, "About": None})
    check_token()
    early_keys_component()(key="pad_keys_early")  # listens before the data is read (see KEYS_LISTEN_JS)
    db = db_path()
    show(f'<div style="display:flex;gap:1em;align-items:baseline"><span style="font-size:1.6em;font-weight:700">'
         f'pad review</span><span style="color:#666">store: <code>{plain(db, keep="")}</code></span></div>')
    if not os.path.exists(db):
        show(f'<div class="pad-error">{plain(db)}: no such store. Run <code>pad run</code> '
             '(or <code>pad ingest</code> ...) first.</div>')
        st.stop()
    try:
        options = cached_choices(db, versions(db)[0])
    except StoreError as exc:
        busy(exc)
    tabs = dict(zip(TABS, st.tabs(TABS, key="tab", on_change="rerun", bind="query-params")))
    with tabs["Programs"]:
        filters, sort, descending, page_size, reviewer = filter_bar(db, options)
        if tabs["Programs"].open:
            ctx = Ctx(db, filters, sort, descending, int(page_size), reviewer or "")
            _filters_changed(ctx)
            review_area(ctx)
    if tabs["Patterns"].open:
        with tabs["Patterns"]:
            patterns_tab(db, filters, reviewer or "")
    if tabs["Reviewers"].open:
        with tabs["Reviewers"]:
            reviewers_tab(db)
    if tabs["Overview"].open:
        with tabs["Overview"]:
            overview_tab(db)
    if tabs["SQL"].open:
        with tabs["SQL"]:
            sql_tab(db)


if __name__ == "__main__":
    main()
