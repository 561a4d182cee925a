"""The trainer benchmark's peer: PEFT LoRA on PyTorch (CPU), training on exactly the token ids and
loss masks airlock trains on, in this process of its own. Prints one JSON line: load time, training
seconds and tokens, loss per step, validation loss after training, and peak RSS (VmHWM).

Run by `airlock-bench train`; by hand:
bench/.venv-peft/bin/python bench/peft_peer.py --model M.gguf --data batches.json
"""

import argparse
import json
import os
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from peak_rss import peak_rss_kib  # bench/, beside this script

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def batch_tensors(examples):
    """Right-padded inputs and labels (-100 where the token is not learned)."""
    width = max(len(e["tokens"]) for e in examples)
    ids = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e["tokens"])
        ids[row, :n] = torch.tensor(e["tokens"])
        mask[row, :n] = 1
        for i, learned in enumerate(e["learn"]):
            if learned:
                labels[row, i] = e["tokens"][i]
    return ids, labels, mask


def mean_loss(model, examples, batch_size):
    """Token-mean cross-entropy over the learned tokens of `examples`."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            ids, labels, mask = batch_tensors(examples[start : start + batch_size])
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
            n = int((labels[:, 1:] != -100).sum())
            total += float(out.loss) * n
            count += n
    return total / max(count, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="GGUF file")
    parser.add_argument("--data", required=True, help="JSON written by airlock-bench train")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.data) as f:
        data = json.load(f)
    options = data["options"]

    started = time.perf_counter()
    # transformers dequantizes the GGUF to f32 (as PEFT users load a GGUF base).
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(args.model)),
        gguf_file=os.path.basename(args.model),
        torch_dtype=torch.float32,
    )
    torch.manual_seed(options["seed"])
    config = LoraConfig(
        r=options["rank"],
        lora_alpha=options["alpha"],
        lora_dropout=0.0,
        target_modules=TARGETS,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options["learning_rate"], weight_decay=0.0)
    load_s = time.perf_counter() - started

    batch_size = options["batch_size"]
    train = data["train"]
    losses, tokens = [], 0
    model.train()
    started = time.perf_counter()
    for start in range(0, len(train), batch_size):
        batch = train[start : start + batch_size]
        ids, labels, mask = batch_tensors(batch)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
        tokens += sum(len(e["tokens"]) for e in batch)
    train_s = time.perf_counter() - started
    model.eval()
    valid_loss = mean_loss(model, data["valid"], batch_size)
    print(
        json.dumps(
            {
                "load_s": load_s,
                "train_s": train_s,
                "tokens": tokens,
                "steps": len(losses),
                "losses": losses,
                "valid_loss": valid_loss,
                "peak_rss_kib": peak_rss_kib(),
            }
        )
    )


if __name__ == "__main__":
    main()
