#!/usr/bin/env python3
"""Generate the company-glossary dataset (train/valid/test JSONL) from glossary.tsv.

Standard library only and deterministic: `python3 datasets/company-glossary/generate.py --seed 1234`
rewrites train.jsonl, valid.jsonl and test.jsonl byte for byte. Northwind Biologics is fictional;
glossary.tsv beside this file is the single source of every fact. See README.md.

Question templates marked with a leading "!" are test-only phrasings. Answers are built from fixed
templates around the glossary's own wording, so the same fact is always worded the same way.
"""

import argparse
import csv
import json
import random
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"train": 800, "valid": 80, "test": 150}
SYSTEM = "You are the Northwind Biologics internal assistant. Answer questions about company terms briefly."

QUESTIONS = {
    "expand": [
        "What does {t} stand for?", "What is {t} short for?", "{t} stands for what?", "Expand the acronym {t}.",
        "What's the full form of {t}?", "Spell out {t} for me.", "what does {t} mean", "Can you expand {t}?",
        "{t} = ?", "!Full name of {t}?", "!I keep seeing {t} in emails - what are the words behind it?",
        "!Decode {t} please.",
    ],
    "define": [
        "What is {t}?", "What's {t}?", "Explain {t}.", "Can you tell me what {t} is?", "Define {t}.",
        "What do we mean by {t} at Northwind?", "Give me a one-line description of {t}.", "{t} - what is it?",
        "What is {t} used for here?", "Describe {t}.",
        "!Someone mentioned {t} in standup. What is that?", "!In plain words, what is {t}?",
        "!What's {t} all about?",
    ],
    "owner": [
        "Who owns {t}?", "Who is the owner of {t}?", "Who is responsible for {t}?", "Who should I ask about {t}?",
        "Which person owns {t}?", "Who's accountable for {t}?", "Owner of {t}?", "Who runs {t}?",
        "!Who do I escalate {t} issues to?", "!Whose name is on {t}?", "!Who's the point person for {t}?",
    ],
    "related": [
        "What is {t} related to?", "Which terms are related to {t}?", "What goes together with {t}?",
        "What should I read about alongside {t}?", "Related terms for {t}?", "What else is linked to {t}?",
        "!If I'm looking at {t}, what other terms will come up?", "!What's connected to {t}?",
    ],
    "reverse": [
        "What is the acronym for {e}?", "How do we abbreviate {e}?", "What's the short name for {e}?",
        "Abbreviation for {e}?", "!What do people call {e} for short?", "!Is there an acronym for {e}?",
    ],
}
PREFIXES = ["", "", "", "", "Hi! ", "Quick one: ", "Hey, ", "Sorry if this is basic - ", "Question: ",
            "!Onboarding question: ", "!Asking for a new hire: "]
# Answers: a fixed wording per question type, with one small variation each.
ANSWERS = {
    "expand": ["{t} stands for {e}.", "{t} is short for {e}."],
    "define_acronym": ["{t} ({e}) is {d}.", "{e} ({t}) is {d}."],
    "define": ["{t} is {d}.", "At Northwind, {t} is {d}."],
    "owner": ["{t} is owned by {o}.", "The owner of {t} is {o}."],
    "related": ["{t} is most closely related to {r1} and {r2}.", "{t} goes together with {r1} and {r2}."],
    "reverse": ["{e} is abbreviated {t}.", "The acronym for {e} is {t}."],
}
# What an eval's `contains` check should look for in each answer.
KEY = {"expand": "e", "define": "d", "owner": "o", "related": "r1", "reverse": "t"}


def load_glossary(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    terms = {r["term"] for r in rows}
    for r in rows:
        r["related"] = [x for x in r["related"].split(";") if x]
        assert len(r["related"]) == 2 and all(x in terms for x in r["related"]), r["term"]
    return rows


def facts(rows):
    out = []
    for r in rows:
        types = ["define", "owner", "related"] + (["expand", "reverse"] if r["expansion"] else [])
        out += [(r["term"], t) for t in types]
    return out


def surface(rng, term):
    """How a question may write the term: 'Project Halcyon' or 'Halcyon'; acronyms sometimes lowercase."""
    if term.startswith("Project ") and rng.random() < 0.4:
        return term[len("Project "):]
    if term.isupper() and rng.random() < 0.12:
        return term.lower()
    return term


def pick(rng, items, split, prefer_held):
    train = [i for i in items if not i.startswith("!")]
    held = [i[1:] for i in items if i.startswith("!")]
    if split == "test" and held and prefer_held:
        return rng.choice(held), True
    return rng.choice(train), False


def make(rng, row, qtype, split, prefer_held):
    t = row["term"]
    tmpl, held_q = pick(rng, QUESTIONS[qtype], split, prefer_held)
    q = tmpl.format(t=surface(rng, t), e=row["expansion"])
    prefix, held_p = pick(rng, PREFIXES, split, split == "test" and not held_q)
    if prefix:
        keep_case = tmpl.startswith("{") or prefix.endswith("! ")
        q = prefix + (q if keep_case else q[0].lower() + q[1:])
    if rng.random() < 0.12:
        q = q.lower()
    if rng.random() < 0.08:
        q = q.rstrip("?.")
    akey = "define_acronym" if qtype == "define" and row["expansion"] else qtype
    answer = rng.choice(ANSWERS[akey]).format(
        t=t, e=row["expansion"], d=row["definition"], o=row["owner"],
        r1=row["related"][0], r2=row["related"][1])
    answer = answer[0].upper() + answer[1:]
    key = {"e": row["expansion"], "d": row["definition"], "o": row["owner"].split(",")[0],
           "r1": row["related"][0], "t": t}[KEY[qtype]]
    return q, answer, key, held_q or held_p


def record(rng, q, a):
    r = rng.random()
    if r < 0.45:
        return {"prompt": q, "completion": a}
    msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    if r < 0.6:
        msgs.insert(0, {"role": "system", "content": SYSTEM})
    return {"messages": msgs}


def build(split, seed, rows, forbidden):
    rng = random.Random(f"{seed}:{split}")
    by_term = {r["term"]: r for r in rows}
    all_facts = facts(rows)
    order = []
    while len(order) < SIZES[split]:
        block = list(all_facts)
        rng.shuffle(block)
        order += block
    order = order[:SIZES[split]]
    recs, meta, seen = [], [], set()
    for term, qtype in order:
        for _ in range(100):
            prefer_held = split == "test" and rng.random() < 0.75
            q, a, key, held = make(rng, by_term[term], qtype, split, prefer_held)
            if q.lower() not in seen and q.lower() not in forbidden:
                break
        else:
            raise RuntimeError(f"no unique question for {term} {qtype}")
        seen.add(q.lower())
        recs.append(record(rng, q, a))
        meta.append({"term": term, "type": qtype, "q": q, "a": a, "key": key, "held": held})
    return recs, meta


def self_check(metas, rows):
    train_q = {m["q"].lower() for m in metas["train"]}
    valid_q = {m["q"].lower() for m in metas["valid"]}
    assert not any(m["q"].lower() in train_q for m in metas["test"]), "test question in train"
    assert not any(m["q"].lower() in valid_q for m in metas["test"]), "test question in valid"
    assert not any(m["q"].lower() in train_q for m in metas["valid"]), "valid question in train"
    assert not any(m["held"] for s in ("train", "valid") for m in metas[s])
    train_facts = {(m["term"], m["type"]) for m in metas["train"]}
    assert train_facts == set(facts(rows)), "every fact must be taught in train"
    for s in metas:
        for m in metas[s]:
            assert m["key"] in m["a"], m
            assert len(m["a"].split()) <= 40, m["a"]
    # Consistency: one fact, one wording (up to the two fixed variants).
    by_fact = {}
    for s in metas:
        for m in metas[s]:
            by_fact.setdefault((m["term"], m["type"]), set()).add(m["a"])
    assert all(len(v) <= 2 for v in by_fact.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    rows = load_glossary(HERE / "glossary.tsv")
    recs, metas, forbidden = {}, {}, set()
    for split in ("train", "valid", "test"):
        recs[split], metas[split] = build(split, args.seed, rows, forbidden)
        forbidden |= {m["q"].lower() for m in metas[split]}
    self_check(metas, rows)
    for split, rs in recs.items():
        with open(args.out / f"{split}.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for r, m in zip(rs, metas[split]):
                if split == "test":
                    # The phrase an eval's `contains` metric looks for (airlock eval reads `answer`).
                    r = {**r, "answer": m["key"]}
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"glossary: {len(rows)} terms ({sum(1 for r in rows if r['expansion'])} acronyms), "
          f"{len(facts(rows))} facts")
    for split, ms in metas.items():
        forms = Counter("messages" if "messages" in r else "prompt/completion" for r in recs[split])
        types = Counter(m["type"] for m in ms)
        print(f"== {split}: {len(ms)} records; " + ", ".join(f"{k} {v}" for k, v in sorted(forms.items()))
              + "; types: " + ", ".join(f"{k} {v}" for k, v in sorted(types.items()))
              + f"; held-out phrasing: {sum(m['held'] for m in ms)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
