"""The PaD paper's claim, measured with pad itself on CPU: PaD vs CoT vs answer-only.

For each symbolic task (coin flip, last-letter concatenation) the data is built through pad:
embedded problems (``pad_data.teachers.embedded``) -> the offline template teacher's programs, 4
samples per question, about a third of them faulty -> pad's sandbox -> labels -> a curated
split (correct programs only, one per question). The chain-of-thought and answer-only
targets are for exactly the questions of that split: each problem's correct rationale ("The
coin starts heads up. Ava flips the coin, so it is now tails up. ... The answer is no.") and
"The answer is no.".

The same tiny causal LM (same size, initial weights, steps, batch size, learning rate and
seed; one byte-level BPE tokenizer per task, trained with ``tokenizers`` on the training texts
of all three methods together, so it favours none) is trained from scratch three ways with
``pad_train.sft``:

- ``pad``: question -> program; scored by executing the generated program in pad's sandbox
  (``pad_train.evaluate``, the path of ``pad-train eval``);
- ``cot``: question -> rationale ending in "The answer is X" (``pad-train eval --cot``);
- ``answer_only``: question -> "The answer is X" (``pad-train eval --answer-only``).

Each is evaluated on an in-distribution test set (``iid``: the training lengths, 2-4 flips or
words, no question seen in training) and a longer out-of-distribution one (``ood``: 5-6 flips
or words, more than any training question). The model is a Llama-style decoder (rotary
positions), so positions past the training lengths are not untrained embedding rows, as they
would be with GPT-2's learned absolute positions (``--arch gpt2`` to see that).

    .venv/bin/python bench/bench_paper.py --quick --out r.json   # < 20 min on 2 cores
    .venv/bin/python bench/bench_paper.py --out bench/results/paper.json

Writes ``{"rows": [{"task", "method", "split", "accuracy", "n"}...], "methods": ..., "data":
..., "model": ..., "settings": ...}``. Coin flip answers are yes/no: 50% is chance.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pad_data.cli.commands import PlainProgress  # noqa: E402
from pad_data.stages.curate import CurateParams, curate  # noqa: E402
from pad_data.teachers.embedded import EmbeddedProblem, embedded_problems  # noqa: E402
from pad_data.stages.execute import execute  # noqa: E402
from pad_data.stages.generate import generate_offline, ingest_embedded  # noqa: E402
from pad_data.store import Store  # noqa: E402

TASKS = {  # task -> (dataset, embedded_problems count argument, length argument)
    "coin": ("pad-coin", "n_coin", "coin_people"),
    "letters": ("pad-letters", "n_letters", "letter_words"),
}
METHODS = ("pad", "cot", "answer_only")
IID_LENGTHS = (2, 4)  # flips / words per question, as in `pad run`'s embedded set
OOD_LENGTHS = (5, 6)
QUICK = {"train": 2000, "test": 100, "steps": 300}
FULL = {"train": 5000, "test": 500, "steps": 1500}


def make_problems(task: str, n: int, seed: int, lengths: tuple[int, int],
                  exclude: set[str] = frozenset()) -> list[EmbeddedProblem]:
    """``n`` distinct problems of ``task`` from pad's embedded generator, none in ``exclude``."""
    _, n_arg, len_arg = TASKS[task]
    out: list[EmbeddedProblem] = []
    ask = n
    while True:
        kwargs = {"n_arith": 0, "n_coin": 0, "n_letters": 0, n_arg: ask, len_arg: lengths}
        probs = embedded_problems(seed, **kwargs)
        out = [p for p in probs if p.question not in exclude][:n]
        if len(out) == n or ask > 20 * n:
            return out
        ask *= 2


def build_data(st: Store, task: str, args) -> dict:
    """Problems -> offline-teacher programs -> sandbox -> labels -> curated split; test sets."""
    dataset = TASKS[task][0]
    train = make_problems(task, args.train, args.seed * 100 + 1, IID_LENGTHS)
    seen = {p.question for p in train}
    iid = make_problems(task, args.test, args.seed * 100 + 2, IID_LENGTHS, seen)
    ood = make_problems(task, args.test, args.seed * 100 + 3, OOD_LENGTHS, seen)
    ingest_embedded(st, args.seed, problems=train, split="train")
    ingest_embedded(st, args.seed, problems=iid, split="test")
    ingest_embedded(st, args.seed, problems=ood, split="ood")
    generate_offline(st, samples=4, seed=args.seed, problems=train)  # teacher programs for training only
    execute(st, dataset=dataset, workers=2)
    teacher = dict(st.con.execute("SELECT label, count(*) FROM labeled_programs WHERE dataset = ? "
                                  "AND origin = 'teacher' GROUP BY 1 ORDER BY 2 DESC", [dataset]).fetchall())
    split = f"{task}-pad"
    cur = curate(st, split, CurateParams(datasets=[dataset], dedup="ast", max_per_problem=1,
                                         validation_fraction=0.0, test_fraction=0.0, seed=args.seed))
    return {"dataset": dataset, "split": split, "train_questions": len(train), "iid_questions": len(iid),
            "ood_questions": len(ood), "teacher_labels": teacher, "curated_train": cur["splits"].get("train", 0),
            "lengths": {"train": IID_LENGTHS, "iid": IID_LENGTHS, "ood": OOD_LENGTHS}}


def build_base(path: Path, corpus: list[str], args) -> dict:
    """The untrained student, saved once per task: every method starts from these exact weights.

    The tokenizer is a byte-level BPE trained on ``corpus`` (the training texts of all three
    methods, so it favours none); ``--vocab 257`` keeps bytes only (one token per character)."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus if args.vocab > 257 else ["x"], vocab_size=args.vocab, min_frequency=2,
                            special_tokens=["<|endoftext|>"], show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    eos = tok.eos_token_id
    if args.arch == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(vocab_size=len(tok), n_positions=args.positions, n_embd=args.width, n_layer=args.layers,
                         n_head=args.heads, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
        cls = GPT2LMHeadModel
    else:
        from transformers import LlamaConfig, LlamaForCausalLM

        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=args.width, intermediate_size=3 * args.width,
                          num_hidden_layers=args.layers, num_attention_heads=args.heads,
                          num_key_value_heads=args.heads, max_position_embeddings=args.positions,
                          tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
        cls = LlamaForCausalLM
    torch.manual_seed(args.seed)
    model = cls(cfg)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return {"arch": args.arch, "parameters": sum(p.numel() for p in model.parameters()), "layers": args.layers,
            "width": args.width, "heads": args.heads, "vocab": len(tok),
            "tokenizer": "byte-level BPE" if args.vocab > 257 else "bytes, no merges"}


def load(st: Store, split: str, method: str):
    from pad_train.data import load_examples

    return load_examples(split, "train", st, cot=method == "cot", answer_only=method == "answer_only")


def run_method(st: Store, base: Path, work: Path, task: str, method: str, examples: list, data: dict,
               args) -> tuple[dict, list]:
    """Train one student and evaluate it on both test sets; ``(summary, rows)``."""
    from transformers import AutoTokenizer

    from pad_train.evaluate import EvalConfig, evaluate
    from pad_train.sft import SFTConfig, train

    tok = AutoTokenizer.from_pretrained(base)
    longest = max(len(tok(e.target)["input_ids"]) for e in examples) + 1
    cfg = SFTConfig(max_steps=args.steps, lr=args.lr, batch_size=args.batch_size, max_length=args.positions,
                    seed=args.seed, save_every=args.steps, log_every=25)
    out = work / f"{task}-{method}"
    t0 = time.perf_counter()
    # a line on stderr every PAD_PROGRESS_INTERVAL s (10): the training and evaluation loops take minutes
    shown = PlainProgress(f"{task} {method} training")
    tr = train(str(base), examples, out, cfg, progress=lambda s, t, rec: shown(s, t, f"loss {rec['loss']:.3f}"))
    shown.finish()
    train_s = time.perf_counter() - t0
    # room for a target twice the longest training target: the OOD questions need ~1.5x
    ecfg = EvalConfig(cot=method == "cot", answer_only=method == "answer_only", batch_size=args.eval_batch_size,
                      max_new_tokens=min(2 * longest + 16, args.positions // 2))
    rows, evals, t0 = [], {}, time.perf_counter()
    for split, store_split in (("iid", "test"), ("ood", "ood")):
        shown = PlainProgress(f"{task} {method} {split} evaluating")
        r = evaluate(st, str(out), data["dataset"], store_split, ecfg, progress=shown)
        shown.finish()
        rows.append({"task": task, "method": method, "split": split, "accuracy": r["accuracy"], "n": r["questions"]})
        evals[split] = {"correct": r["correct"], "labels": r["labels"], "run_id": r["run_id"]}
        print(f"  {task:8} {method:12} {split}: {r['accuracy']:.3f} ({r['correct']}/{r['questions']})"
              + (f" labels {r['labels']}" if r["labels"] else ""), flush=True)
    eval_s = time.perf_counter() - t0
    summary = {"examples": len(examples), "steps": tr["steps"], "first_loss": tr["first_loss"],
               "last_loss": tr["last_loss"], "train_s": round(train_s, 1), "eval_s": round(eval_s, 1),
               "tokens_per_s": round(tr["tokens_per_s"]), "longest_target_tokens": longest,
               "max_new_tokens": ecfg.max_new_tokens, "eval": evals}
    return summary, rows


def table(result: dict) -> str:
    acc = {(r["task"], r["method"], r["split"]): r for r in result["rows"]}
    lines = [f"{task}: {m['arch']}, {m['parameters']:,} parameters ({m['layers']} layers, width {m['width']}, "
             f"{m['tokenizer']} vocabulary of {m['vocab']}), trained from scratch"
             for task, m in result["model"].items()]
    lines += [f"every method: {result['settings']['steps']} steps x batch {result['settings']['batch_size']}, "
              f"lr {result['settings']['lr']}, seed {result['settings']['seed']}",
              "", "| task | method | iid accuracy | ood accuracy | n (each) | train s | eval s |",
              "|---|---|---|---|---|---|---|"]
    for task, methods in result["methods"].items():
        for method, s in methods.items():
            i, o = acc[(task, method, "iid")], acc[(task, method, "ood")]
            lines.append(f"| {task} | {method} | {100 * i['accuracy']:.1f}% | {100 * o['accuracy']:.1f}% | {i['n']} | "
                         f"{s['train_s']:.0f} | {s['eval_s']:.0f} |")
    return "\n".join(lines)


def provenance() -> dict:
    """Where and when a table was measured: the commit, whether the code it ran differed from it,
    the date and the machine's load average."""
    import subprocess

    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30).stdout.rstrip()
        except OSError:
            return ""

    changed = git("status", "--porcelain", "--", "pad_data", "pad_train", "bench/bench_paper.py")
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_code": changed.splitlines(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": list(os.getloadavg()),
            "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"smaller run, < 20 min on 2 cores: {QUICK}")
    ap.add_argument("--out", type=Path, help="write the results JSON here")
    ap.add_argument("--tasks", default="coin,letters")
    ap.add_argument("--train", type=int, help="training questions per task")
    ap.add_argument("--test", type=int, help="questions per test set (iid and ood)")
    ap.add_argument("--steps", type=int, help="optimizer steps per method")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--arch", choices=("llama", "gpt2"), default="llama")
    ap.add_argument("--vocab", type=int, default=512, help="BPE vocabulary size (257: bytes only)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--positions", type=int, default=2048, help="context window (generation gets at most half)")
    ap.add_argument("--eval-batch-size", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, help="keep the store and models here [default: a temporary folder]")
    args = ap.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        ap.error(f"--tasks: choose from {', '.join(TASKS)}")

    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pad-paper-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result: dict = {"rows": [], "methods": {}, "data": {}, "model": {},
                        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                        "measured": provenance()}
        with Store(work / "pad.duckdb") as st:
            for task in tasks:
                t0 = time.perf_counter()
                data = build_data(st, task, args)
                data["seconds"] = round(time.perf_counter() - t0, 1)
                result["data"][task] = data
                print(f"{task}: {data['train_questions']} training questions, teacher programs {data['teacher_labels']}"
                      f" -> {data['curated_train']} curated; {data['iid_questions']} iid + {data['ood_questions']} "
                      f"ood test questions ({data['seconds']} s)", flush=True)
                examples = {m: load(st, data["split"], m) for m in METHODS}
                base = work / f"{task}-base"
                result["model"][task] = build_base(base, [t for exs in examples.values() for e in exs
                                                    for t in (e.prompt, e.target)], args)
                result["methods"][task] = {}
                for method in METHODS:
                    summary, rows = run_method(st, base, work, task, method, examples[method], data, args)
                    result["methods"][task][method] = summary
                    result["rows"] += rows
    result["seconds"] = round(time.perf_counter() - t_all, 1)
    result["measured"]["load_average_end"] = list(os.getloadavg())
    print()
    print(table(result))
    m = result["measured"]
    print(f"\ntotal {result['seconds']:.0f} s at {m['commit']}{' (with uncommitted changes)' if m['uncommitted_code'] else ''}"
          f", {m['date']}, load average {m['load_average'][0]:.1f} -> {m['load_average_end'][0]:.1f} on {m['cpus']} "
          "cores. Coin flip answers are yes/no: 50% is chance.")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
