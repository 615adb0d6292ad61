"""Step-wise verified beam search: decode a program one line (step) at a time.

At each step, for each of ``beams`` partial programs the student proposes ``candidates``
next lines: its greedy line plus ``candidates - 1`` sampled ones (so the greedy path is
always in the search space). Every extended prefix is scored by

    score = w_logprob * (mean log-probability of the program's tokens under the student)
            - exec_penalty * (number of steps whose check failed)
            + w_verifier * (log P(correct step) of the prefix, from a step verifier, when given)

The step check runs the prefix in pad's sandbox, completed into a function that returns
(``pass`` under an open block, then ``return 0``): it must run without an error, and every
name it reads must be defined somewhere in it (so a typo in a branch not taken still
fails). With the default ``exec_penalty`` of 10 nats a prefix that fails is ranked below
any prefix that runs, yet the search still returns something when all fail. The optional
verifier (:mod:`pad_train.verifier`, weight 0.5 by default) also ranks prefixes that run but
look wrong to a classifier trained on the store's labeled programs. The best
``beams`` prefixes go on; a prefix ends at a ``return`` at the function's top level (or
the end of the model's output) and is then checked as a whole program: it must return a
value. The result is the best finished program, with each step's check in its trace.

Causal LMs only (a seq2seq student decodes with ``--decode greedy`` or ``sample``).
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

from pad_data.sandbox.pool import SandboxPool
from pad_data.rules.syntax import parse

from pad_train.data import prompt_for

_BUILTINS = set(dir(builtins))


@dataclass
class StepwiseConfig:
    beams: int = 4
    candidates: int = 4
    temperature: float = 0.8  # for the sampled candidates
    max_steps: int = 24
    max_line_tokens: int = 64
    w_logprob: float = 1.0
    exec_penalty: float = 10.0
    w_verifier: float = 0.5  # used only with a verifier


@dataclass
class Partial:
    text: str = ""  # the program so far, each line ending in "\n"
    logprob: float = 0.0  # sum over the program's tokens
    tokens: int = 0
    failed_steps: int = 0
    verifier: float = 0.0  # log P(correct step) of this prefix, when a verifier is used
    done: bool = False
    trace: list[tuple[str, str]] = field(default_factory=list)  # (line, check result: "ok" or the error)

    def score(self, cfg: StepwiseConfig) -> float:
        return (cfg.w_logprob * self.logprob / max(1, self.tokens) - cfg.exec_penalty * self.failed_steps
                + cfg.w_verifier * self.verifier)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def probe(text: str, done: bool) -> str:
    """The program that checks prefix ``text``: itself when finished, else completed to run."""
    if done:
        return text
    lines = text.rstrip("\n").split("\n")
    body = next((" " * _indent(line) for line in lines[1:] if line.strip()), "    ")
    extra = []
    if lines[-1].rstrip().endswith(":"):
        extra.append(" " * (_indent(lines[-1]) + 4) + "pass")
    if len(lines) > 1 or lines[0].rstrip().endswith(":"):
        extra.append(body + "return 0")
    return "\n".join(lines + extra) + "\n"


def undefined_names(source: str) -> list[str]:
    """Names the program reads but never defines (assignment, argument, import, def) or gets from builtins."""
    try:
        tree = parse(source)
    except (SyntaxError, ValueError):  # syntax.TooDeep too (ast.walk below is iterative: it cannot recurse)
        return []  # the sandbox reports the syntax error itself
    defined = set(_BUILTINS)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            defined.add(node.id)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
                  - defined)


def _finished(line: str, text: str) -> bool:
    """A ``return`` at the top level of the function body ends the program."""
    lines = [x for x in text.rstrip("\n").split("\n")[1:] if x.strip()]
    return line.strip().startswith("return") and bool(lines) and _indent(line) <= _indent(lines[0])


class StepwiseSearch:
    """Runs the search for one question at a time with a shared sandbox pool."""

    def __init__(self, model, tok, cfg: StepwiseConfig, pool: SandboxPool, verifier=None):
        self.model, self.tok, self.cfg, self.pool, self.verifier = model, tok, cfg, pool, verifier
        self.device = next(model.parameters()).device
        self.checks = 0

    # ---------------------------------------------------------------- model
    def _ids(self, prompt: str, text: str) -> list[int]:
        """Prompt and program tokenized apart, as in training."""
        ids = self.tok(prompt, add_special_tokens=False)["input_ids"]
        return ids + (self.tok(text, add_special_tokens=False)["input_ids"] if text else [])

    def _batch(self, seqs: list[list[int]], left: bool):
        import torch

        n = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id
        ids = [([pad] * (n - len(s)) + s) if left else (s + [pad] * (n - len(s))) for s in seqs]
        mask = [([0] * (n - len(s)) + [1] * len(s)) if left else ([1] * len(s) + [0] * (n - len(s))) for s in seqs]
        return torch.tensor(ids, device=self.device), torch.tensor(mask, device=self.device)

    def propose(self, prompt: str, partials: list[Partial]) -> list[list[tuple[str, bool]]]:
        """Per partial: distinct candidate next lines ``(line, ended)``; the greedy one first."""
        import torch

        seqs = [self._ids(prompt, p.text) for p in partials]
        window = getattr(self.model.config, "max_position_embeddings", None)
        if window:
            seqs = [s[-(window - self.cfg.max_line_tokens):] for s in seqs]
        ids, mask = self._batch(seqs, left=True)
        common = dict(max_new_tokens=self.cfg.max_line_tokens, stop_strings=["\n"], tokenizer=self.tok,
                      pad_token_id=self.tok.pad_token_id, top_p=None, top_k=None)
        with torch.no_grad():
            outs = [self.model.generate(input_ids=ids, attention_mask=mask, do_sample=False, temperature=None,
                                        **common)]
            if self.cfg.candidates > 1:
                outs.append(self.model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                                                temperature=self.cfg.temperature,
                                                num_return_sequences=self.cfg.candidates - 1, **common))
        per = [[] for _ in partials]
        eos = self.tok.eos_token_id
        for k, out in enumerate(outs):
            reps = 1 if k == 0 else self.cfg.candidates - 1
            for j, row in enumerate(out[:, ids.shape[1]:].tolist()):
                ended = eos in row and "\n" not in self.tok.decode(row[:row.index(eos)], skip_special_tokens=True)
                text = self.tok.decode(row, skip_special_tokens=True)
                line = text.split("\n")[0].rstrip()
                per[j // reps].append((line, ended or not text))
        return [list(dict.fromkeys(c)) for c in per]

    def logprobs(self, prompt: str, texts: list[str]) -> list[tuple[float, int]]:
        """``(sum of log-probabilities, tokens)`` of each program text after the prompt."""
        import torch

        p = self.tok(prompt, add_special_tokens=False)["input_ids"]
        seqs = [self._ids(prompt, t) for t in texts]
        window = getattr(self.model.config, "max_position_embeddings", None)
        starts = [len(p)] * len(seqs)
        if window:
            cut = [max(0, len(s) - window) for s in seqs]
            seqs = [s[c:] for s, c in zip(seqs, cut)]
            starts = [max(1, st - c) for st, c in zip(starts, cut)]
        ids, mask = self._batch(seqs, left=False)
        with torch.no_grad():
            logp = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        out = []
        for i, s in enumerate(seqs):
            pos = torch.arange(starts[i], len(s), device=self.device)
            tok_lp = logp[i, pos - 1, ids[i, pos]]
            out.append((float(tok_lp.sum()), len(pos)))
        return out

    # ---------------------------------------------------------------- search
    def check(self, partials: list[Partial]) -> list[str]:
        """Each partial's step check: ``"ok"`` or what failed."""
        probes = [probe(p.text, p.done) for p in partials]
        self.checks += len(probes)
        results = dict(self.pool.map(enumerate(probes)))
        out = []
        for i, src in enumerate(probes):
            r = results[i]
            missing = undefined_names(src)
            if r.status != "ok":
                out.append(f"{r.error_type or r.status}: {r.error_message or ''}".strip())
            elif missing:
                out.append(f"undefined name(s): {', '.join(missing)}")
            else:
                out.append("ok")
        return out

    def search(self, question: str) -> Partial:
        cfg, prompt = self.cfg, prompt_for(question)
        active, finished = [Partial()], []
        for _ in range(cfg.max_steps):
            ext = []
            for parent, cands in zip(active, self.propose(prompt, active)):
                for line, ended in cands:
                    text = parent.text + line + "\n"
                    done = ended or _finished(line, text)
                    ext.append(Partial(text=text, failed_steps=parent.failed_steps, done=done,
                                       trace=parent.trace + [(line, "")]))
            vs = self.verifier.score([prompt + p.text for p in ext]) if self.verifier else [0.0] * len(ext)
            for p, (lp, n), verdict, v in zip(ext, self.logprobs(prompt, [p.text for p in ext]), self.check(ext), vs):
                p.logprob, p.tokens, p.verifier = lp, n, v
                p.failed_steps += verdict != "ok"
                p.trace[-1] = (p.trace[-1][0], verdict)
            ext.sort(key=lambda p: p.score(cfg), reverse=True)
            finished += [p for p in ext if p.done]
            active = [p for p in ext if not p.done][:cfg.beams]
            best_done = max((p.score(cfg) for p in finished), default=None)
            # stop when nothing is left, or no open prefix is ahead of the best finished program
            if not active or (best_done is not None and len(finished) >= cfg.beams
                              and best_done >= active[0].score(cfg)):
                break
        pool = finished or active
        return max(pool, key=lambda p: p.score(cfg))
