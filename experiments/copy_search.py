"""Where does sleepy-tiny fail on programs a person wrote: in the SEARCH text or in the REPLACE text?

One greedy reply per hand-written frozen koan of the model's known families, twice: as the agent
gets it, and with every SEARCH line forced to be a line of the program (transformers'
`prefix_allowed_tokens_fn` allows only tokens that keep the line a prefix of one). A reply that then applies but does not pass
failed in its REPLACE text.

    python -m experiments.copy_search --model sleepy/tiny/model --out DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HEAD, MID = "<<<<<<< SEARCH\n", "=======\n"


class ProgramLinesOnly:
    """For transformers' `prefix_allowed_tokens_fn`: inside a SEARCH section, the tokens that
    keep each line one of `lines` (or the ======= divider that ends the section); elsewhere,
    every token."""

    def __init__(self, tokenizer, lines: list[str], prompt_len: int):
        self.tokenizer, self.prompt_len = tokenizer, prompt_len
        self.lines = {line + "\n" for line in lines} | {MID}
        self.texts = [tokenizer.decode([i]) for i in range(len(tokenizer))]

    def _fits(self, text: str) -> bool:
        while "\n" in text:
            line, text = text.split("\n", 1)
            if line + "\n" not in self.lines:
                return False
            if line + "\n" == MID:
                return True
        return not text or any(line.startswith(text) for line in self.lines)

    def __call__(self, batch_id: int, input_ids) -> list[int]:
        every = list(range(len(self.texts)))
        reply = self.tokenizer.decode(input_ids[self.prompt_len :])
        at = reply.rfind(HEAD)
        section = reply[at + len(HEAD) :] if at >= 0 else None
        if section is None or section.startswith(MID) or "\n" + MID in section:
            return every  # not inside a SEARCH section
        partial = section[section.rfind("\n") + 1 :]
        return [i for i, t in enumerate(self.texts) if self._fits(partial + t)] or every


def copy_search(model_dir: Path, max_new_tokens: int = 200) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sleepy.koan import load_evalset
    from sleepy.prompts.edits import EditError, get_edit_format
    from sleepy.prompts.template import PromptTemplate
    from sleepy.sandbox import Sandbox

    training = json.loads((model_dir / "training.json").read_text())["config"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    koans = [
        k
        for k in load_evalset(Path("evalsets/frozen.json"))
        if k.source == "handwritten" and k.family in training["families"]
    ]
    sandbox, prompt = Sandbox(), PromptTemplate.load(training["template"])
    fmt = get_edit_format("search_replace")
    counts = {m: {"applied": 0, "passed": 0} for m in ("plain", "program_lines")}
    replies = []
    for koan in koans:
        feedback = sandbox.verdict(koan, koan.buggy_code).feedback()
        messages = prompt.messages(koan, koan.buggy_code, feedback, [], "search_replace")
        ids = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids if torch.is_tensor(ids) else ids["input_ids"]
        for mode in counts:
            allowed = None
            if mode == "program_lines":
                allowed = ProgramLinesOnly(tokenizer, koan.buggy_code.splitlines(), ids.shape[1])
            with torch.inference_mode():
                out = model.generate(
                    ids,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    prefix_allowed_tokens_fn=allowed,
                )
            reply = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            try:
                fixed = fmt.apply(koan.buggy_code, reply)
            except EditError:
                passed = None
            else:
                counts[mode]["applied"] += 1
                passed = sandbox.verdict(koan, fixed).passed
                counts[mode]["passed"] += passed
            replies.append({"koan": koan.id, "mode": mode, "passed": passed, "reply": reply})
    return {"model": str(model_dir), "koans": len(koans), **counts, "replies": replies}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=Path("sleepy/tiny/model"))
    p.add_argument("--out", type=Path, default=Path("outputs/copy_search"))
    args = p.parse_args(argv)
    from sleepy.console import quiet_libraries

    args.out.mkdir(parents=True, exist_ok=True)
    quiet_libraries(args.out / "copy_search.log")
    result = copy_search(args.model)
    (args.out / "copy_search.json").write_text(json.dumps(result, indent=2) + "\n")
    for mode in ("plain", "program_lines"):
        c = result[mode]
        print(
            f"{mode:14s} {c['applied']:2d} of {result['koans']} replies apply, "
            f"{c['passed']:2d} pass"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
