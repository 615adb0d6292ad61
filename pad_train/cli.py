"""``pad-train``: fine-tune a student on curated splits and evaluate it by executing what it writes."""

from __future__ import annotations

import contextlib
from typing import Optional

import typer

from pad_data.rules.options import check_split
from pad_data.store import Store, resolve_path

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="pad-train: fine-tune a student on curated splits and evaluate it in the sandbox.")
from pad_data.cli import _cli_errors, _progress, console, err_console  # noqa: E402  (one place for output, progress and errors)
from pad_data.store.render import add_row, plain_table, say  # noqa: E402
_state: dict = {"db": None}
REPORT_WIDTH = 100  # `pad-train report` fits a terminal of this width


@app.callback()
def _global(db: Optional[str] = typer.Option(None, "--db", envvar="PAD_DB", help="DuckDB store [default: ./pad.duckdb]")):
    _state["db"] = db


def _errors():
    return _cli_errors(interrupted="interrupted: checkpoints are kept; rerun with --resume")


@app.command()
def sft(split: str = typer.Option(..., "--split", help="curated snapshot name, or an exported dataset directory"),
        model: str = typer.Option(..., "--model", help="base model: local directory or Hub name"),
        out: str = typer.Option(..., "--out", help="output directory"),
        epochs: float = typer.Option(3.0), lr: float = typer.Option(5e-5), batch_size: int = typer.Option(8),
        max_length: int = typer.Option(512), bf16: bool = typer.Option(False),
        cot: bool = typer.Option(False, help="chain-of-thought baseline: train on the problems' rationales"),
        answer_only: bool = typer.Option(False, help="answer-only baseline: train on question -> 'The answer is X.'"),
        task: str = typer.Option("program", help="program: question -> program; refine: question + faulty program "
                                                 "+ feedback -> fixed program (a `pad curate --task refine` snapshot)"),
        mix: float = typer.Option(0.0, help="refine: add MIX x (refinement examples) question -> program examples"),
        mix_split: Optional[str] = typer.Option(None, help="refine: take the --mix examples from this program "
                                                           "snapshot [default: the pairs' own targets]"),
        resume: bool = typer.Option(False, help="continue from the newest checkpoint in --out (none: an error)"),
        seed: int = typer.Option(0),
        save_steps: int = typer.Option(0, "--save-steps", "--save-every",
                                       help="checkpoint every N steps (0: at the end of each epoch)"),
        grad_accum: int = typer.Option(1, help="gradient accumulation steps (batch = --batch-size x N)"),
        max_steps: int = typer.Option(0, help="train N optimizer steps (0: --epochs decides)"),
        limit: Optional[int] = typer.Option(None, help="at most N training examples"),
        eval_steps: int = typer.Option(0, help="every N steps, score the split's validation problems by executing "
                                               "a greedy program each in the sandbox (0: never)"),
        lora: bool = typer.Option(False, help="train LoRA adapters (peft), merged into the saved model"),
        lora_r: int = typer.Option(16), lora_alpha: float = typer.Option(32.0),
        lora_targets: Optional[str] = typer.Option(None, help="comma-separated module names [default: peft's]"),
        report_to: str = typer.Option("none", help="none | tensorboard | wandb | ... (transformers' report_to)")):
    """Fine-tune a student: question -> program (or -> rationale with --cot, or refinement with --task refine)."""
    from pad_train.data import load_examples, load_problems, load_refine_examples
    from pad_train.sft import SFTConfig, train

    with _training(out, save_steps, "one is written at the end of each epoch"):
        if task not in ("program", "refine"):
            raise ValueError(f"unknown --task {task!r}; choose program or refine")
        if (mix or mix_split) and task != "refine":
            raise ValueError("--mix and --mix-split go with --task refine")
        need_store = not _is_dir(split) or cot or answer_only or bool(mix_split and not _is_dir(mix_split))
        store = Store(resolve_path(_state["db"]), read_only=True) if need_store else None
        try:
            examples = (load_refine_examples(split, "train", store, mix=mix, mix_split=mix_split, seed=seed)
                        if task == "refine" else
                        load_examples(split, "train", store, cot=cot, answer_only=answer_only))
            if eval_steps and (task != "program" or cot or answer_only):
                raise ValueError("--eval-steps scores programs by execution: it goes with --task program "
                                 "(not --cot, --answer-only or refine)")
            validation = load_problems(split, "validation", store) if eval_steps else None
        finally:
            if store:
                store.close()
        cfg = SFTConfig(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, bf16=bf16, seed=seed,
                        save_every=save_steps, grad_accum=grad_accum, max_steps=max_steps, limit=limit,
                        eval_steps=eval_steps, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
                        lora_targets=lora_targets, report_to=report_to)
        with _progress("training") as progress:
            r = train(model, examples, out, cfg, resume=resume, validation=validation,
                      progress=lambda s, t, rec: progress(s, t, f"loss {rec['loss']:.3f}, "
                                                                f"{rec['tokens_per_s']:,.0f} tok/s"))
    cut = (f"; --max-length {max_length} cut {r['truncated']:,} of them (their ends are not learned)"
           if r.get("truncated") else "")
    accuracy = ("; validation accuracy by execution " + " -> ".join(
        f"{100 * e['eval_accuracy']:.1f}%" for e in r["eval"]) + f" (steps {', '.join(str(e['step']) for e in r['eval'])};"
        f" {r['eval'][-1]['eval_correct']}/{r['eval'][-1]['eval_problems']} at the end)") if r["eval"] else ""
    say(console, f"trained {r['steps']} steps on {r['examples']} examples{cut}: loss {r['first_loss']:.3f} -> "
                  f"{r['last_loss']:.3f}, {r['tokens_per_s']:,.0f} tokens/s{accuracy}; model in {r['out']}")


def _is_dir(path: str) -> bool:
    from pathlib import Path

    return Path(path).is_dir()


@contextlib.contextmanager
def _training(out: str, every: int, otherwise: str = "none is written before the end"):
    """A training run's errors as one line; Ctrl-C says exactly what was saved in ``out``."""
    from pad_train.runs import saved_note

    stopped = False
    with _errors():
        try:
            yield
        except KeyboardInterrupt:
            err_console.print(saved_note(out, every, otherwise), soft_wrap=True)
            stopped = True
    if stopped:  # raised here, not inside _errors(), which would report typer's Exit as an error
        raise typer.Exit(130)


@app.command()
def grpo(split: str = typer.Option(..., "--split", help="curated snapshot name (its train problems), or an exported "
                                                        "dataset directory"),
         model: str = typer.Option(..., "--model", help="policy to start from (a causal LM: local dir or Hub name), "
                                                        "e.g. a `pad-train sft` output"),
         out: str = typer.Option(..., "--out", help="output directory"),
         num_generations: int = typer.Option(4, help="programs sampled per problem (the group GRPO compares)"),
         temperature: float = typer.Option(1.0), max_completion_length: int = typer.Option(128),
         beta: float = typer.Option(0.0, help="KL coefficient against the starting policy (0: none)"),
         lr: float = typer.Option(1e-5), batch_size: int = typer.Option(8, help="completions per step"),
         max_steps: int = typer.Option(100), save_steps: int = typer.Option(0, help="checkpoint every N steps "
                                                                                    "(0: only the final model)"),
         resume: bool = typer.Option(False, help="continue from the newest checkpoint in --out (none: an error)"),
         limit: Optional[int] = typer.Option(None, help="at most N problems"), seed: int = typer.Option(0),
         lora: bool = typer.Option(False, help="train LoRA adapters (peft), merged into the saved model"),
         lora_r: int = typer.Option(16), lora_alpha: float = typer.Option(32.0),
         lora_targets: Optional[str] = typer.Option(None, help="comma-separated module names [default: peft's]"),
         timeout: float = typer.Option(2.0, help="each program's time limit in the sandbox (s)"),
         correct_reward: float = typer.Option(1.0), format_reward: float = typer.Option(
             0.0, help="added for a runnable program (it ran and returned a value)"),
         error_penalty: float = typer.Option(0.0, help="subtracted for a program that did not compile, raised, "
                                                       "timed out or returned nothing"),
         report_to: str = typer.Option("none", help="none | tensorboard | wandb | ... (transformers' report_to)")):
    """Reinforcement learning with pad's sandbox as the reward: GRPO (TRL) on the problems of a split.

    Each sampled program is executed and rewarded by its label against the problem's gold answer;
    every rollout is stored (origin rollout, train_run_id, train_step, reward) as training goes."""
    from pad_train.grpo import GRPOSettings, train_grpo

    cfg = GRPOSettings(num_generations=num_generations, temperature=temperature,
                       max_completion_length=max_completion_length, beta=beta, lr=lr, batch_size=batch_size,
                       max_steps=max_steps, save_steps=save_steps, seed=seed, limit=limit, lora=lora, lora_r=lora_r,
                       lora_alpha=lora_alpha, lora_targets=lora_targets, timeout=timeout,
                       correct_reward=correct_reward, format_reward=format_reward, error_penalty=error_penalty,
                       report_to=report_to)
    with _training(out, save_steps), _progress("GRPO") as progress:
        r = train_grpo(model, split, resolve_path(_state["db"]), out, cfg, resume=resume,
                       progress=lambda s, t, rec: progress(s, t, f"reward {rec['reward']:.2f}" if "reward" in rec
                                                           else ""))
    rewards = [rec["reward"] for rec in r["log"]]
    trend = f", mean reward {rewards[0]:.2f} -> {rewards[-1]:.2f}" if rewards else ""
    labels = ", ".join(f"{k} {v:,}" for k, v in sorted(r["labels"].items(), key=lambda kv: -kv[1]))
    say(console, f"grpo: {r['steps']} steps on {r['problems']} problems{trend}; {r['rollouts']:,} rollouts "
                  f"({labels}) stored as origin rollout, train_run_id {r['train_run_id']}; model in {r['out']}")


@app.command("eval")
def eval_(model: str = typer.Option(..., "--model", help="trained model directory"),
          dataset: str = typer.Option(..., "--dataset", help="dataset in the store (e.g. gsm8k, svamp)"),
          split: str = typer.Option("test"), samples: int = typer.Option(1, help=">1: self-consistency vote"),
          temperature: float = typer.Option(0.0), batch_size: int = typer.Option(16),
          max_new_tokens: int = typer.Option(256), limit: Optional[int] = typer.Option(None),
          timeout: float = typer.Option(2.0),
          cot: bool = typer.Option(False, help="evaluate a CoT-baseline model (scores 'The answer is X')"),
          answer_only: bool = typer.Option(False, help="evaluate an answer-only baseline (scores 'The answer is X')"),
          decode: str = typer.Option("auto", help="greedy | sample | stepwise (verified step-wise beam search) "
                                                  "[auto: greedy, or sample when --samples > 1]"),
          beams: int = typer.Option(4, help="stepwise: partial programs kept per step"),
          candidates: int = typer.Option(4, help="stepwise: next lines proposed per partial program"),
          verifier: Optional[str] = typer.Option(None, help="stepwise: a step verifier (`pad-train verifier`)"),
          verifier_weight: float = typer.Option(0.5, help="stepwise: weight of the verifier's log P(correct)"),
          refine_rounds: int = typer.Option(0, help="let the student fix its failing programs from the "
                                                    "execution feedback, up to R rounds")):
    """Generate a program per question, execute it in the sandbox, score it, store it.

    Commits each batch as it goes; rerun the same command after an interruption to evaluate
    only the problems still missing."""
    from pad_train.evaluate import EvalConfig, evaluate

    if samples > 1 and temperature == 0:
        temperature = 0.7
    with _errors():
        check_split(split)
    with _cli_errors(interrupted="interrupted: the problems evaluated so far are stored; rerun the same command "
                                 "to evaluate the rest"), Store(resolve_path(_state["db"])) as store, \
            _progress("evaluating") as progress:
        r = evaluate(store, model, dataset, split, EvalConfig(cot=cot, answer_only=answer_only, samples=samples,
                                                              temperature=temperature, batch_size=batch_size,
                                                              max_new_tokens=max_new_tokens, limit=limit, timeout=timeout,
                                                              decode=decode, beams=beams, candidates=candidates,
                                                              refine_rounds=refine_rounds,
                                                              verifier=verifier, verifier_weight=verifier_weight),
                     progress=progress)
    rounds = r.get("accuracy_by_round") or []
    after = (" (after each refinement round: " + " -> ".join(f"{100 * a:.1f}%" for a in rounds) + ")"
             if len(rounds) > 1 else "")
    resumed = f" (resumed: {r['resumed']} problems were evaluated before, {r['evaluated']} now)" if r["resumed"] else ""
    say(console, f"{dataset}/{split}: accuracy {100 * r['accuracy']:.1f}% ({r['correct']}/{r['questions']}){after}, "
                  f"{r['settings']['decode']}, labels {r['labels']}, {r['programs_per_s']:.1f} programs/s, "
                  f"run {r['run_id']}{resumed}")


@app.command("verifier")
def verifier_(model: str = typer.Option(..., "--model", help="base model for the classifier (local dir or Hub name)"),
              out: str = typer.Option(..., "--out", help="output directory"),
              dataset: Optional[str] = typer.Option(None, help="only programs of this dataset"),
              limit: Optional[int] = typer.Option(None, help="at most N programs"),
              epochs: float = typer.Option(2.0), lr: float = typer.Option(5e-5), batch_size: int = typer.Option(16),
              max_length: int = typer.Option(512), seed: int = typer.Option(0)):
    """Train a step verifier (correct vs faulty program prefixes, from the store's labels) for stepwise search."""
    from pad_train.verifier import VerifierConfig, step_examples, train_verifier

    with _errors():
        with Store(resolve_path(_state["db"]), read_only=True) as store:
            examples = step_examples(store, dataset, limit)
        if not examples:
            raise ValueError("no labeled programs in the store: run `pad execute` first")
        r = train_verifier(model, examples, out, VerifierConfig(epochs=epochs, lr=lr, batch_size=batch_size,
                                                                max_length=max_length, seed=seed))
    say(console, f"verifier: {r['steps']} steps on {r['examples']} prefixes ({r['correct_steps']} correct steps): "
                  f"loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}; model in {r['out']}")


@app.command()
def report():
    """Compare evaluation runs (accuracy per dataset, model and decoding)."""
    from pad_train.evaluate import report as get_report

    with _errors(), Store(resolve_path(_state["db"]), read_only=True) as store:
        df = get_report(store)
    if df.empty:
        say(console, f"no evaluation runs in {store.path} yet (run `pad-train eval`)")
        return
    table = plain_table("model", "data", "decoding", "accuracy", "prog/s", "run")
    model, *short = table.columns
    model.overflow, model.max_width = "fold", 36  # a long path folds onto more lines: nothing is cut off
    for column in short:
        column.no_wrap = True  # short cells kept whole
    for r in df.itertuples(index=False):
        decoding = f"{r.decode}" + (f" x{r.samples}" if (r.samples or 1) > 1 else "")
        if r.refine_rounds:
            decoding += f"\n+{r.refine_rounds} refine"
        accuracy = f"{r.accuracy_pct:.1f}% ({r.correct:,}/{r.questions:,})"
        if r.accuracy_by_round:
            accuracy += "\n" + r.accuracy_by_round.replace(" -> ", "->")
        add_row(table, r.model, f"{r.dataset}/{r.split}", decoding, accuracy, f"{r.programs_per_s:,.1f}",
                f"{r.run_id}\n{str(r.created_at)[:10]}")
    # a terminal's width up to REPORT_WIDTH; a file or pipe gets REPORT_WIDTH (not rich's 80)
    console.print(table, width=min(console.width, REPORT_WIDTH) if console.is_terminal else REPORT_WIDTH)


def main() -> None:
    from pad_data.cli.entry import sigterm_as_ctrl_c

    sigterm_as_ctrl_c()  # a killed job says what was saved, as after Ctrl-C
    app()
