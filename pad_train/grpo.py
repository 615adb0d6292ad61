"""GRPO with pad's sandbox as the reward: ``pad-train grpo`` on TRL's ``GRPOTrainer``.

The problems of a curated split (its train part) become prompts (:func:`pad_train.data.prompt_for`,
what ``sft`` trained on and ``eval`` asks); the policy samples ``num_generations`` programs per
prompt, :class:`pad_train.rewards.ExecutionReward` runs them in one warm sandbox pool and
rewards each by its label against the problem's gold (or consensus) answer, and every rollout
is written to the store as it goes (origin ``rollout``, ``train_run_id``, ``train_step``,
``reward``, execution and label). Checkpoints every ``save_steps`` steps in ``OUT/checkpoint-N``;
``resume`` continues from the newest. The final model (LoRA merged in) is saved in ``OUT``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from pad_train.data import load_problems, prompt_for
from pad_train.rewards import ExecutionReward, RewardScheme
from pad_train.runs import check_model_source, lora_config, quiet, resume_point


@dataclass
class GRPOSettings:
    num_generations: int = 4
    temperature: float = 1.0
    max_completion_length: int = 128
    beta: float = 0.0  # KL coefficient (0: no reference model)
    lr: float = 1e-5
    batch_size: int = 8  # completions per step (prompts x generations)
    max_steps: int = 100
    save_steps: int = 0  # 0: only the final model
    seed: int = 0
    limit: int | None = None  # at most N problems
    lora: bool = False
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_targets: str | None = None
    timeout: float = 2.0  # each program's, in the sandbox
    correct_reward: float = 1.0
    format_reward: float = 0.0
    error_penalty: float = 0.0
    report_to: str = "none"
    log_steps: int = 10

    def check(self) -> None:
        if self.num_generations < 2:
            raise ValueError("--num-generations must be >= 2 (GRPO compares a prompt's completions)")
        if self.batch_size % self.num_generations:
            raise ValueError(f"--batch-size {self.batch_size} must be a multiple of --num-generations "
                             f"{self.num_generations}")
        if self.max_steps < 1 or self.max_completion_length < 1:
            raise ValueError("--max-steps and --max-completion-length must be >= 1")
        if not (self.temperature > 0 and self.lr > 0 and self.beta >= 0):
            raise ValueError("--temperature and --lr must be > 0, --beta >= 0")


def train_grpo(model_name: str, split: str, store_path: str | Path, out: str | Path, cfg: GRPOSettings,
               resume: bool = False, progress: Callable[[int, int, dict], None] | None = None) -> dict:
    """GRPO on the problems of ``split``; returns a summary (steps, rewards, accuracy per step, rollouts)."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.utils import logging as hf_logging
    from trl import GRPOConfig, GRPOTrainer

    from pad_data.store import Store

    cfg.check()
    out = Path(out)
    start_from = resume_point(out, resume)
    check_model_source(model_name)
    with Store(store_path, read_only=True) as store:
        problems = load_problems(split, "train", store, cfg.limit)
    data = datasets.Dataset.from_list([{"prompt": prompt_for(p["question"]), **p} for p in problems])
    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(model_name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_name)
    if model.config.is_encoder_decoder:
        raise ValueError("pad-train grpo needs a causal LM (this model is seq2seq)")
    window = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    longest = max(len(tok(p["prompt"], add_special_tokens=False)["input_ids"]) for p in data)
    if window and longest + cfg.max_completion_length > window:
        raise ValueError(f"--max-completion-length {cfg.max_completion_length} and the longest prompt ({longest} "
                         f"tokens) do not fit the model's {window} positions")
    args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=cfg.batch_size, num_generations=cfg.num_generations,
        temperature=cfg.temperature, max_completion_length=cfg.max_completion_length, beta=cfg.beta,
        learning_rate=cfg.lr, max_steps=cfg.max_steps, seed=cfg.seed, logging_steps=cfg.log_steps,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        report_to=[] if cfg.report_to == "none" else cfg.report_to.split(","), disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(), bf16=False, gradient_checkpointing=False,
        top_k=0, top_p=1.0)
    steps: list[dict] = []

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:
                steps.append({"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, float)}})
            if progress:
                progress(state.global_step, state.max_steps, steps[-1] if steps else {})

    run_id = uuid.uuid4().hex[:12]
    scheme = RewardScheme(correct=cfg.correct_reward, format_reward=cfg.format_reward,
                          error_penalty=cfg.error_penalty)
    with ExecutionReward(scheme, store=store_path, model=model_name, run_id=run_id, timeout=cfg.timeout) as reward:
        trainer = GRPOTrainer(model=model, processing_class=tok, reward_funcs=reward, train_dataset=data, args=args,
                              peft_config=lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_targets, "CAUSAL_LM")
                              if cfg.lora else None, callbacks=[Progress()])
        quiet(trainer)
        result = trainer.train(resume_from_checkpoint=start_from)
        labels, rollouts = dict(reward.labels), reward.rollouts
    final = trainer.model.merge_and_unload() if cfg.lora else trainer.model
    final.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "pad_train.json").write_text(json.dumps({"base_model": model_name, "method": "grpo", "split": split,
                                                   "config": asdict(cfg), "problems": len(data),
                                                   "train_run_id": run_id, "seq2seq": False}, indent=2))
    log = out / "train_log.jsonl"
    with open(log, "a") as f:
        for rec in steps:
            f.write(json.dumps(rec) + "\n")
    return {"steps": result.global_step, "problems": len(data), "rollouts": rollouts, "labels": labels,
            "train_run_id": run_id, "log": steps, "out": str(out)}
