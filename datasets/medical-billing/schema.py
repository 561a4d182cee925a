#!/usr/bin/env python3
"""Write the medical-billing task's JSON Schema with its vocabulary closed over codes.tsv.

`python3 datasets/medical-billing/schema.py > configs/medical-billing.codes.schema.json`

The prompt's schema (configs/medical-billing.schema.json), read and narrowed: `diagnosis` is
one of the primary codes' official descriptions, each procedure one of codes.tsv's procedure
names and each billing code one of its codes, as a billing system's code list would require.
Under constrained decoding the model can then only choose among real entries, never spell a new
one.
"""

import json
import sys

from generate import CODES_TSV, REPO, load_codes

PROMPT_SCHEMA = REPO / "configs/medical-billing.schema.json"


def main():
    rows = load_codes(CODES_TSV)
    descriptions = [r["description"] for r in rows if r["role"] == "primary"]
    procedures = sorted({p for r in rows for p in r["procedures"]})
    codes = [r["code"] for r in rows]
    schema = json.loads(PROMPT_SCHEMA.read_text(encoding="utf-8"))
    props = schema["properties"]
    props["diagnosis"] = {"title": props["diagnosis"]["title"], "enum": descriptions, "type": "string"}
    props["procedures"]["items"] = {"enum": procedures, "type": "string"}
    props["billing_codes"]["items"] = {"enum": codes, "type": "string"}
    json.dump(schema, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
