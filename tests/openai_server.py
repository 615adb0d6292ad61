"""A small OpenAI-compatible chat completions server for tests and benchmarks (127.0.0.1 only).

It answers ``POST /v1/chat/completions`` with PaL-style programs for the last ``Q:`` in the
prompt and injects faults at a given rate: 429 with ``retry-after``, 500, slow answers
(past the client's timeout), and truncated JSON bodies. Faults are drawn from a seeded RNG,
so a run is reproducible. ``questions_seen`` counts successful answers per question.

It also speaks the Batch API: ``POST /v1/files`` (multipart upload), ``GET /v1/files/ID`` and
``/content``, ``POST /v1/batches``, ``GET /v1/batches/ID`` (each poll moves the batch on by the
time since it was created: ``batch_s``) and ``GET /v1/batches`` (list). Questions containing
``fail_if`` become error-file lines. ``batch_api=False`` plays a server without it (404 on those
paths); ``upload_requests`` counts every upload it receives, answered or refused.

Given ``answers`` (question -> the gold answer the test hides from the store), it plays a
teacher that is mostly right: :func:`plausible_program` writes a program per sample that
returns the answer, or, by a seeded draw, a typical mistake or a program that raises. Every
choice hashes the question, the sample index and the temperature, so answers are
deterministic whatever the order of requests.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("429", "500", "slow", "truncated")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:12], 16) / 16**12


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def plausible_program(question: str, gold: float, i: int, temperature: object) -> str:
    """A program for sample ``i`` of ``question``: right with a probability set by the problem's
    drawn difficulty (80% of problems 0.92, 17% 0.65, 3% 0.3), else a wrong answer (half of the
    time the problem's one typical slip, so wrong answers can agree) or an exception."""
    difficulty = unit("difficulty", question)
    p_right = 0.92 if difficulty < 0.8 else 0.65 if difficulty < 0.97 else 0.3
    nums = [float(x.replace(",", "")) for x in NUMBER.findall(question)] or [1.0]
    target, error = gold, None
    if unit("sample", question, i, temperature) >= p_right:
        kind = unit("mistake", question, i, temperature)
        if kind < 0.5:  # the typical slip for this problem
            slip = int(unit("slip", question) * 4)
            target = (gold + nums[0], gold * 2 + 1, gold - nums[-1] - 1, gold / 2 + 1)[slip]
        elif kind < 0.8:
            target = gold + 1 + int(unit("off", question, i, temperature) * 40)
        else:
            error = "NameError" if kind < 0.9 else "ZeroDivisionError"
    known = nums[0]
    style = int(unit("style", question, i) * 3)
    doc = question.replace("\\", " ").replace('"""', "'")
    if style == 0:
        body = [f"known = {_num(known)}", f"rest = {_num(target - known)}", "result = known + rest"]
    elif style == 1:  # a rounded intermediate: within the tolerance, not exactly equal
        body = [f"total = {_num(target)}", "per_day = round(total / 7, 6)", "result = per_day * 7"]
    else:
        body = ["parts = 4", f"each = {_num(target)} / parts", "result = each * parts"]
    if error == "NameError":
        body[-1] = body[-1].replace("result = ", "result = totl + ")
    elif error == "ZeroDivisionError":
        body.insert(0, "empty = 0")
        body[-1] += " / empty"
    lines = "\n".join(f"    {b}" for b in body)
    return f'def solution():\n    """{doc}"""\n{lines}\n    return result\n'


NAMES = ("Ava", "Bruno", "Chen", "Dalia", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemal", "Lucia")
ITEMS = ("stickers", "marbles", "apples", "pencils", "shells", "stamps", "cookies", "beads", "cards", "plums")
FAVORITES = (("A farmer has 12 cows and buys 5 more cows. Each cow gives 8 liters of milk a day. "
              "How many liters of milk does the farmer get in a week?", 952.0),
             ("A train travels 60 miles per hour for 3 hours and then 45 miles per hour for 2 hours. "
              "How many miles does it travel in total?", 270.0))


def new_problem(key: str) -> tuple[str, float]:
    """A word problem drawn from ``key`` and its answer: one of four story templates, with
    names, items and numbers drawn too (so two keys practically never give the same text)."""
    u = lambda tag, lo, hi: lo + int(unit(key, tag) * (hi - lo + 1))  # noqa: E731
    n1, n2 = NAMES[u("n1", 0, 11)], NAMES[(u("n1", 0, 11) + u("n2", 1, 11)) % 12]
    item, a, b, c, w = ITEMS[u("item", 0, 9)], u("a", 20, 400), u("b", 2, 19), u("c", 1, 15), u("w", 2, 9)
    t = u("template", 0, 3)
    if t == 0:
        return (f"{n1} has {a} {item}. {n1} buys {b} more {item} every week for {w} weeks and then gives {c} "
                f"of them to {n2}. How many {item} does {n1} have now?", a + b * w - c)
    if t == 1:
        return (f"A shop run by {n1} sells {item} for ${b} each. On Monday it sells {a} {item}, and on Tuesday "
                f"it sells {c} more than on Monday. How much money in dollars does the shop make on the two days?",
                b * (2 * a + c))
    if t == 2:
        return (f"{n1} walks {b} miles on each weekday and {c + 10} miles on Saturday. {n2} walks {c} miles fewer "
                f"per week than {n1}. How many miles do {n1} and {n2} walk together in {w} weeks?",
                (2 * (5 * b + c + 10) - c) * w)
    a4 = 4 * a
    return (f"There are {a4} {item} in a box. {n1} takes one quarter of them, and {n2} takes {b} of the rest. "
            f"Then {c} more {item} are put in the box. How many {item} are in the box now?", a4 - a - b + c)


def _change_a_number(text: str) -> str:
    m = NUMBER.search(text)
    return text if m is None else text[:m.start()] + str(int(float(m.group().replace(",", ""))) + 7) + text[m.end():]


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the stdlib default of 5 resets connections under concurrency


class FakeTeacherServer:
    def __init__(self, fault_rate: float = 0.0, seed: int = 0, support_n: bool = True,
                 slow_s: float = 2.0, delay_s: float = 0.0, fail_if: str | None = None,
                 answers: dict[str, float] | None = None, memorized: list[str] | None = None,
                 batch_s: float = 0.2, batch_api: bool = True):
        self.fault_rate = fault_rate
        self.support_n = support_n
        self.slow_s = slow_s
        self.delay_s = delay_s
        self.fail_if = fail_if  # questions containing this always get a 500
        self.answers = {" ".join(q.split()): a for q, a in (answers or {}).items()}
        self.memorized = list(memorized or [])  # benchmark questions this teacher has seen (for synthesize)
        self.synthesized: Counter = Counter()  # replies to synthesis prompts, by kind
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.batch_s = batch_s  # how long a batch takes (half validating, half in progress)
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.batch_api = batch_api
        self.uploads = self.batches_created = self.batch_polls = self.downloads = 0
        self.upload_requests = 0
        self.requests = 0
        self.faults: Counter = Counter()
        self.questions_seen: Counter = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave together: no 40 ms delayed-ACK stalls

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.do_get(self)

            def do_POST(self):
                if "chunked" in self.headers.get("transfer-encoding", "").lower():
                    data = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        data += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    data = self.rfile.read(int(self.headers.get("content-length", 0)))
                path = self.path.split("?")[0].rstrip("/")
                if path.endswith("/files"):
                    with server.lock:
                        server.upload_requests += 1
                if not server.batch_api and path.endswith(("/files", "/batches")):
                    return server._send(self, 404, b'{"error": {"message": "not found"}}')
                if path.endswith("/files"):
                    return server.upload(self, self.headers.get("content-type", ""), data)
                if path.endswith("/batches"):
                    return server.create_batch(self, json.loads(data))
                server.handle(self, json.loads(data))

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # ------------------------------------------------------------------
    def _send(self, h, status: int, payload: bytes, headers: dict | None = None,
              content_type: str = "application/json") -> None:
        h.send_response(status)
        h.send_header("content-type", content_type)
        h.send_header("content-length", str(len(payload)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        try:
            h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def synthesize(self, prompt: str, temperature: object) -> str:
        """A reply to a ``pad synthesize`` prompt, drawn from the prompt: mostly a new problem (whose
        answer the server then knows), sometimes a copy of the first example shown (verbatim, or with
        one number changed), a memorized benchmark question with one number changed, one of two
        favorite problems the teacher keeps coming back to, or no problem at all."""
        examples = re.findall(r"Example problem: (.*)", prompt)
        u, answer = unit("synth", prompt, temperature), None
        if u < 0.08 and examples:
            kind, text = "copy", examples[0]
        elif u < 0.16 and examples:
            kind, text = "copy_changed", _change_a_number(examples[0])
        elif u < 0.24 and self.memorized:
            kind, text = "memorized", _change_a_number(self.memorized[int(unit("mem", prompt) * len(self.memorized))])
        elif u < 0.36:
            kind = "refusal" if u < 0.27 else "favorite"
            text, answer = ("Sure, here it is.", None) if kind == "refusal" else FAVORITES[int(unit("fav", prompt) * 2)]
        else:
            kind, (text, answer) = "new", new_problem(prompt)
        if answer is not None:
            with self.lock:
                self.answers[" ".join(text.split())] = float(answer)
        with self.lock:
            self.synthesized[kind] += 1
        style = int(unit("style", prompt) * 3)
        return (f"New problem: {text}" if style == 0 else text if style == 1
                else f"New problem:\n{text}\n\nAnswer: 42")

    def completion(self, body: dict) -> dict:
        """The chat completion object for a request body (no faults): programs for the last ``Q:``
        of the prompt, or a new problem for a ``pad synthesize`` prompt."""
        prompt = body["messages"][-1]["content"]
        if prompt.rstrip().endswith("New problem:"):
            texts = [self.synthesize(prompt, body.get("temperature"))]
        else:
            question = re.findall(r"Q: (.*)", prompt)[-1].strip()
            n = int(body.get("n") or 1) if self.support_n else 1
            gold = self.answers.get(" ".join(prompt.rsplit("Q: ", 1)[-1].split()))
            texts = []
            for i in range(n):
                seed = int(hashlib.sha256(f"{question}:{i}:{body.get('temperature')}".encode()).hexdigest()[:8], 16)
                value = seed % 1000
                code = f'def solution():\n    """{question}"""\n    answer = {value}\n    return answer\n'
                if gold is not None:
                    code = plausible_program(question, gold, i, body.get("temperature"))
                texts.append(f"```python\n{code}```" if i % 2 == 0
                             else f"Here is the program:\n\n{code}\nIt returns {value}.")
            with self.lock:
                self.questions_seen[question] += len(texts)
        return {"id": f"chatcmpl-{self.requests}", "object": "chat.completion", "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": t}}
                            for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 30 * len(texts),
                          "total_tokens": len(prompt) // 4 + 30 * len(texts)}}

    def handle(self, h, body: dict) -> None:
        prompt = body["messages"][-1]["content"]
        synthesis = prompt.rstrip().endswith("New problem:")
        question = "" if synthesis else re.findall(r"Q: (.*)", prompt)[-1].strip()
        with self.lock:
            self.requests += 1
            faults = ("429", "500") if synthesis else FAULTS
            fault = self.rng.choice(faults) if self.rng.random() < self.fault_rate else None
        if self.fail_if and self.fail_if in question:
            fault = "500"
        if fault:
            self.faults[fault] += 1
        if fault == "429":
            return self._send(h, 429, b'{"error": {"message": "rate limited"}}', {"retry-after": "0.01"})
        if fault == "500":
            return self._send(h, 500, b'{"error": {"message": "boom"}}')
        if fault == "slow":
            time.sleep(self.slow_s)
        if self.delay_s:
            time.sleep(self.delay_s)
        if fault == "truncated":
            return self._send(h, 200, b'{"id": "chatcmpl-0", "object": "chat.completion", "choices": [{"ind')
        return self._send(h, 200, json.dumps(self.completion(body)).encode())

    # ------------------------------------------------------------------ Batch API
    def upload(self, h, content_type: str, data: bytes) -> None:
        """``POST /v1/files``: a multipart upload (fields ``purpose`` and ``file``)."""
        msg = BytesParser(policy=email_policy).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + data)
        fields = {part.get_param("name", header="content-disposition"): part for part in msg.iter_parts()}
        if "file" not in fields or "purpose" not in fields:
            return self._send(h, 400, b'{"error": {"message": "file and purpose are required"}}')
        with self.lock:
            self.uploads += 1
            fid = f"file-{len(self.files) + 1}"
            meta = {"id": fid, "object": "file", "bytes": 0, "created_at": int(time.time()),
                    "filename": fields["file"].get_filename(),
                    "purpose": fields["purpose"].get_content().strip(), "status": "processed"}
            content = fields["file"].get_payload(decode=True)
            meta["bytes"] = len(content)
            self.files[fid] = {"meta": meta, "data": content}
        return self._send(h, 200, json.dumps(meta).encode())

    def create_batch(self, h, body: dict) -> None:
        with self.lock:
            if body.get("input_file_id") not in self.files:
                return self._send(h, 404, b'{"error": {"message": "no such file"}}')
            self.batches_created += 1
            bid = f"batch_{len(self.batches) + 1}"
            lines = self.files[body["input_file_id"]]["data"].decode().splitlines()
            batch = {"id": bid, "object": "batch", "endpoint": body.get("endpoint"), "errors": None,
                     "input_file_id": body["input_file_id"], "completion_window": body.get("completion_window"),
                     "status": "validating", "output_file_id": None, "error_file_id": None,
                     "created_at": int(time.time()), "metadata": body.get("metadata"),
                     "request_counts": {"total": len([x for x in lines if x.strip()]), "completed": 0, "failed": 0}}
            self.batches[bid] = {"batch": batch, "t0": time.monotonic()}
        return self._send(h, 200, json.dumps(batch).encode())

    def _advance(self, bid: str) -> dict:
        """The batch, moved on by the time since it was created: validating for the first half of
        ``batch_s``, in progress for the second, then run whole: output and error files."""
        entry = self.batches[bid]
        batch, age = entry["batch"], time.monotonic() - entry["t0"]
        if batch["status"] in ("completed", "failed"):
            return batch
        if age < self.batch_s / 2:
            return batch
        if age < self.batch_s:
            batch["status"] = "in_progress"
            counts = batch["request_counts"]
            counts["completed"] = int(counts["total"] * (age - self.batch_s / 2) / (self.batch_s / 2))
            return batch
        out, err = [], []
        for k, line in enumerate(self.files[batch["input_file_id"]]["data"].decode().splitlines()):
            if not line.strip():
                continue
            req = json.loads(line)
            body, cid = req["body"], req["custom_id"]
            question = re.findall(r"Q: (.*)", body["messages"][-1]["content"])
            if self.fail_if and question and self.fail_if in question[-1]:
                err.append({"id": f"batch_req_{k}", "custom_id": cid, "error": None,
                            "response": {"status_code": 500, "request_id": f"req_{k}",
                                         "body": {"error": {"message": "boom", "type": "server_error"}}}})
            else:
                out.append({"id": f"batch_req_{k}", "custom_id": cid, "error": None,
                            "response": {"status_code": 200, "request_id": f"req_{k}", "body": self.completion(body)}})
        for name, recs in (("output_file_id", out), ("error_file_id", err)):
            if recs:
                fid = f"file-{len(self.files) + 1}"
                data = ("\n".join(json.dumps(r) for r in recs) + "\n").encode()
                self.files[fid] = {"meta": {"id": fid, "object": "file", "bytes": len(data),
                                            "created_at": int(time.time()), "filename": f"{bid}_{name}.jsonl",
                                            "purpose": "batch_output", "status": "processed"}, "data": data}
                batch[name] = fid
        batch.update(status="completed", completed_at=int(time.time()),
                     request_counts={"total": len(out) + len(err), "completed": len(out), "failed": len(err)})
        return batch

    def do_get(self, h) -> None:
        parts = h.path.split("?")[0].rstrip("/").split("/")[2:]  # after /v1
        with self.lock:
            if not self.batch_api:
                return self._send(h, 404, b'{"error": {"message": "not found"}}')
            if parts[:1] == ["batches"] and len(parts) == 2 and parts[1] in self.batches:
                self.batch_polls += 1
                return self._send(h, 200, json.dumps(self._advance(parts[1])).encode())
            if parts == ["batches"]:
                data = [self.batches[b]["batch"] for b in sorted(self.batches, reverse=True)]
                return self._send(h, 200, json.dumps({"object": "list", "data": data, "has_more": False}).encode())
            if parts[:1] == ["files"] and len(parts) >= 2 and parts[1] in self.files:
                f = self.files[parts[1]]
                if parts[2:] == ["content"]:
                    self.downloads += 1
                    return self._send(h, 200, f["data"], content_type="application/octet-stream")
                return self._send(h, 200, json.dumps(f["meta"]).encode())
        return self._send(h, 404, b'{"error": {"message": "not found"}}')
