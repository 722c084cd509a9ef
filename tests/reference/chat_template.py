#!/usr/bin/env python3
"""transformers' apply_chat_template as the reference for `curate tokenize
--chat` (tests/cli/chat.rs runs it with the python of scripts/pyref.sh).

    chat_template.py TOKENIZER_DIR TEMPLATE RECORDS.jsonl

For each record with `messages`, prints one JSON line: its id and either
the input_ids and assistant_masks that transformers returns with
return_assistant_tokens_mask=True, or the error the template raised.
"""
import json
import sys

from transformers import AutoTokenizer


def main(tokenizer_dir: str, template_path: str, records: str) -> None:
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    template = open(template_path, encoding="utf-8").read()
    for line in open(records, encoding="utf-8"):
        record = json.loads(line)
        if "messages" not in record:
            continue
        try:
            out = tok.apply_chat_template(record["messages"], chat_template=template, tokenize=True,
                                          return_dict=True, return_assistant_tokens_mask=True)
            result = {"id": record["id"], "ids": list(out["input_ids"]), "mask": list(out["assistant_masks"])}
        except Exception as e:  # the template's raise_exception, as curate counts it
            result = {"id": record["id"], "error": str(e)}
        print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main(*sys.argv[1:])
