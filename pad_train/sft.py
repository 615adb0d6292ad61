"""Supervised fine-tuning on the ecosystem's trainers: question -> program (or -> rationale for the CoT baseline).

- Causal LMs (GPT-2, Qwen, ...): TRL's ``SFTTrainer`` on prompt-completion data with
  completion-only loss. Each example reaches it as TRL's own prompt-completion preprocessing
  leaves one (``input_ids`` + ``completion_mask``), tokenized by :func:`encode` so pad's cut rule
  for long examples applies and is counted; TRL builds the labels (prompt tokens -100).
- Seq2seq students (CodeT5, T5): transformers' ``Seq2SeqTrainer`` (source -> target).

Both group batches by length (``train_sampling_strategy="group_by_length"``), so little compute
goes to padding. Options: LoRA (peft, :func:`pad_train.runs.lora_config`, merged into the saved
model), gradient accumulation, ``max_steps``, ``limit``, ``report_to`` and, every ``eval_steps``
steps, the validation problems scored by *execution* (:class:`ExecutionEval`: greedy programs run
in pad's sandbox and labelled against the gold answer), accuracy logged beside the loss.

Checkpoints: the trainer's ``OUT/checkpoint-<step>`` (every ``save_every`` steps, else at the end of
each epoch); ``resume=True`` continues from the newest one (none is an error). The final model is
saved in ``OUT``. Logs (loss, lr, tokens/s, eval accuracy) go to ``OUT/train_log.jsonl`` and the
progress callback; the summary counts the examples ``max_length`` cut. A model name that is
neither a local directory nor in the Hugging Face cache fails at once when the Hub is out of
reach (:mod:`pad_train.runs`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from pad_train.data import Example, prompt_for
from pad_train.runs import load_model, lora_config, quiet, resume_point  # noqa: F401 - load_model: public here too


@dataclass
class SFTConfig:
    epochs: float = 3.0
    lr: float = 5e-5
    batch_size: int = 8
    max_length: int = 512
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    bf16: bool = False
    seed: int = 0
    save_every: int = 0  # steps; 0 = at the end of each epoch
    log_every: int = 10
    grad_accum: int = 1
    max_steps: int = 0  # > 0: train this many steps (epochs is ignored)
    limit: int | None = None  # at most N examples
    eval_steps: int = 0  # > 0: score the validation problems by execution every N steps (and at the end)
    eval_timeout: float = 2.0
    lora: bool = False
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_targets: str | None = None
    report_to: str = "none"

    def check(self) -> None:
        for name in ("batch_size", "grad_accum", "max_length", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("max_steps", "save_every", "eval_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be >= 1")
        if not self.max_steps and not self.epochs > 0:
            raise ValueError("--epochs must be > 0 (or give --max-steps)")
        if not self.lr > 0:
            raise ValueError("--lr must be > 0")


def encode(examples: list[Example], tok, seq2seq: bool, max_length: int) -> tuple[list[dict], int]:
    """Trainer-ready rows of each example, and how many examples ``max_length`` cut.

    Causal: ``input_ids`` (prompt + target + end token) and ``completion_mask`` (1 on the target),
    TRL's prompt-completion form. Seq2seq: ``input_ids`` and ``labels``."""
    out, cut = [], 0
    eos = tok.eos_token or ""
    for ex in examples:
        if seq2seq:
            src, tgt = tok(ex.prompt)["input_ids"], tok(ex.target)["input_ids"]
            if len(src) > max_length or len(tgt) > max_length:  # cut as the tokenizer cuts (its end token kept)
                cut += 1
                src = tok(ex.prompt, truncation=True, max_length=max_length)["input_ids"]
                tgt = tok(ex.target, truncation=True, max_length=max_length)["input_ids"]
            out.append({"input_ids": src, "labels": tgt, "length": len(src)})
        else:
            p = tok(ex.prompt, add_special_tokens=False)["input_ids"]
            t = tok(ex.target + eos, add_special_tokens=False)["input_ids"]
            if len(p) + len(t) > max_length:
                cut += 1
                # too long: keep the end of the prompt (at most half the window) and cut the
                # target, so every example still has something to learn (no all -100 labels)
                t = t[:max_length - min(len(p), max_length // 2)]
                p = p[len(p) - (max_length - len(t)):]
            out.append({"input_ids": p + t, "completion_mask": [0] * len(p) + [1] * len(t), "length": len(p) + len(t)})
    return out, cut


class ExecutionEval:
    """Validation accuracy by execution: a greedy program per problem (the prompt ``eval`` uses),
    run in one warm sandbox pool and rewarded 1 iff its label is ``correct``
    (:class:`pad_train.rewards.ExecutionReward`, the reward GRPO trains on)."""

    def __init__(self, problems: list[dict], tok, seq2seq: bool, max_new_tokens: int, timeout: float,
                 batch_size: int = 16):
        from pad_train.evaluate import EvalConfig
        from pad_train.rewards import ExecutionReward

        self.problems, self.tok, self.seq2seq = problems, tok, seq2seq
        self.cfg = EvalConfig(max_new_tokens=max_new_tokens, batch_size=batch_size, timeout=timeout)
        self.reward = ExecutionReward(timeout=timeout)

    def __call__(self, model) -> dict:
        import torch

        from pad_train.evaluate import generate_texts

        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                texts = generate_texts(model, self.tok, self.seq2seq, [prompt_for(p["question"])
                                                                       for p in self.problems], self.cfg)
        finally:
            model.train(was_training)
        columns = {k: [p[k] for p in self.problems] for k in ("answer", "answer_text")}
        rewards = self.reward([t[0] for t in texts], **columns)
        correct = sum(1 for label, _ in self.reward.last if label == "correct")
        return {"eval_accuracy": correct / len(rewards), "eval_correct": correct, "eval_problems": len(rewards)}

    def close(self) -> None:
        self.reward.close()


class _Schedule:
    """The trainers' linear warmup and decay, with the first step already at lr / warmup (transformers'
    linear schedule spends the first step at lr 0, one step behind during the warmup)."""

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        import torch

        if self.lr_scheduler is None:
            warmup = max(1, self.args.get_warmup_steps(num_training_steps))
            total = num_training_steps
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer or self.optimizer,
                lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup)))
        return self.lr_scheduler


class _CPULoss:
    """On CPU, the causal model's own loss instead of TRL's fused LM head: the same mean negative
    log-likelihood of the target tokens, but off Triton devices the fused head scores every position
    in tiles and adds entropy and top-1 metrics pad does not log, a large share of a small model's
    step. On CUDA/XPU TRL's head is kept: there it never builds the full logits."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        from transformers import Trainer

        if inputs["input_ids"].device.type == "cpu":
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)


def train(model_name: str, examples: list[Example], out: str | Path, cfg: SFTConfig,
          resume: bool = False, progress: Callable[[int, int, dict], None] | None = None,
          validation: list[dict] | None = None) -> dict:
    """Fine-tune ``model_name`` on ``examples``; returns a summary (steps, losses, tokens/s, eval accuracy).

    ``validation``: problems (:func:`pad_train.data.load_problems`) scored by execution every
    ``cfg.eval_steps`` steps."""
    import datasets
    import torch
    from transformers import TrainerCallback

    cfg.check()
    if cfg.eval_steps and not validation:
        raise ValueError("--eval-steps needs validation problems (the split has none)")
    out = Path(out)
    resumed = resume_point(out, resume)  # --resume with no checkpoint is an error, not a fresh start
    examples = examples[:cfg.limit] if cfg.limit else examples
    if not examples:
        raise ValueError("no training examples")
    model, tok, seq2seq = load_model(model_name)
    out.mkdir(parents=True, exist_ok=True)
    rows, truncated = encode(examples, tok, seq2seq, cfg.max_length)
    data = datasets.Dataset.from_list(rows)
    common = dict(
        output_dir=str(out), per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps or -1, learning_rate=cfg.lr,
        warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay, max_grad_norm=1.0, lr_scheduler_type="linear",
        seed=cfg.seed, data_seed=cfg.seed, logging_steps=1, save_strategy="steps" if cfg.save_every else "epoch",
        save_steps=cfg.save_every or 500, report_to=[] if cfg.report_to == "none" else cfg.report_to.split(","),
        disable_tqdm=True, use_cpu=not torch.cuda.is_available(), bf16=cfg.bf16, activation_checkpointing=False,
        train_sampling_strategy="group_by_length", include_num_input_tokens_seen="non_padding",
        dataloader_pin_memory=False)
    peft = lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_targets, "SEQ_2_SEQ_LM" if seq2seq else "CAUSAL_LM") \
        if cfg.lora else None
    log_path = out / "train_log.jsonl"
    losses: list[float] = []
    evals: list[dict] = []
    scorer = ExecutionEval(validation, tok, seq2seq, _eval_tokens(examples, tok, model), cfg.eval_timeout) \
        if cfg.eval_steps else None
    t0 = time.perf_counter()
    state0: dict = {}

    class Logs(TrainerCallback):
        """Every step's loss to ``progress``, the mean of every ``log_every`` to the log file; execution
        accuracy every ``eval_steps``, through the trainer's log (so ``report_to`` gets it too)."""

        def on_train_begin(self, args, state, control, **kw):
            # rates count from here: building the trainer and its dataset is not training speed
            state0.update(step=state.global_step, tokens=state.num_input_tokens_seen, t=time.perf_counter())

        def on_step_end(self, args, state, control, model=None, **kw):
            if scorer and (state.global_step % cfg.eval_steps == 0 or state.global_step >= state.max_steps):
                metrics = scorer(model)
                evals.append({"step": state.global_step, **metrics})
                trainer.log(metrics)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            step = state.global_step
            if "eval_accuracy" in logs:
                _append(log_path, {"step": step, **logs})
                return
            if "loss" not in logs:
                return
            losses.append(float(logs["loss"]))
            seconds = time.perf_counter() - state0["t"]
            recent = losses[-cfg.log_every:]
            rec = {"step": step, "loss": sum(recent) / len(recent), "lr": logs.get("learning_rate", 0.0),
                   "tokens_per_s": (state.num_input_tokens_seen - state0.get("tokens", 0)) / seconds if seconds else 0.0,
                   "epoch": state.epoch}
            if step % cfg.log_every == 0 or step >= state.max_steps:
                _append(log_path, rec)
            if progress:
                progress(step, state.max_steps, rec)

    from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled

    bars = is_progress_bar_enabled()
    disable_progress_bar()  # TRL's dataset preparation bars; pad-train shows its own progress
    try:
        if seq2seq:
            from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

            class PadSeq2SeqTrainer(_Schedule, Seq2SeqTrainer):
                pass

            if peft is not None:
                from peft import get_peft_model

                model = get_peft_model(model, peft)
            trainer = PadSeq2SeqTrainer(model=model, args=Seq2SeqTrainingArguments(**common), train_dataset=data,
                                        processing_class=tok, callbacks=[Logs()],
                                        data_collator=DataCollatorForSeq2Seq(tok, model=model, label_pad_token_id=-100))
        else:
            from trl import SFTConfig as TRLConfig, SFTTrainer

            class PadSFTTrainer(_CPULoss, _Schedule, SFTTrainer):
                pass

            trainer = PadSFTTrainer(model=model, processing_class=tok, train_dataset=data, peft_config=peft,
                                    callbacks=[Logs()],
                                    args=TRLConfig(**common, completion_only_loss=True, max_length=cfg.max_length,
                                                   packing=False))
        quiet(trainer)
        result = trainer.train(resume_from_checkpoint=resumed)
        trained_s = time.perf_counter() - state0["t"]
    finally:
        if scorer:
            scorer.close()
        if bars:
            enable_progress_bar()
    final = trainer.model.merge_and_unload() if cfg.lora else trainer.model
    final.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "pad_train.json").write_text(json.dumps({"base_model": model_name, "config": asdict(cfg),
                                                   "examples": len(examples), "seq2seq": seq2seq,
                                                   "trainer": "Seq2SeqTrainer" if seq2seq else "trl.SFTTrainer"},
                                                  indent=2))
    seconds = time.perf_counter() - t0
    tokens = trainer.state.num_input_tokens_seen - state0.get("tokens", 0)
    return {"steps": result.global_step, "truncated": truncated, "examples": len(examples),
            "first_loss": losses[0] if losses else None,
            "last_loss": sum(losses[-10:]) / max(1, len(losses[-10:])) if losses else None,
            "tokens_per_s": tokens / trained_s if trained_s else 0.0, "seconds": seconds, "eval": evals,
            "out": str(out)}


def _eval_tokens(examples: list[Example], tok, model) -> int:
    """Room to write a validation program: twice the longest training target plus a margin, within
    half a causal model's window (the prompt needs the rest)."""
    want = 2 * max(len(tok(e.target)["input_ids"]) for e in examples) + 16
    window = None if model.config.is_encoder_decoder else getattr(model.config, "max_position_embeddings", None)
    return min(want, window // 2) if window else want


def _append(path: Path, rec: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
