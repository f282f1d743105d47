"""Independent references for sft-dist's implicit-prompt preference rows (run through
scripts/make-implicit-prompt-references).

A pair without a "prompt" — {"chosen", "rejected"}, each the whole text (Anthropic's HH-RLHF) or the
whole conversation (trl-lib/ultrafeedback_binarized) — has its prompt taken by TRL 1.16's own
`trl.data_utils.extract_prompt`, as DPOTrainer, CPOTrainer, ORPOTrainer and KTOTrainer take it (and
CPO's and ORPO's `maybe_extract_prompt` from whole-conversation sides beside a text "prompt"). Each
case is a row as a JSON line and TRL's {"prompt", "chosen", "rejected"}; `refused` marks the rows
sft-dist refuses instead (no shared beginning, which TRL makes an empty prompt or, when the chosen
text ends with a space, a wrong one; a conversation whose sides differ before their last assistant
turn, which sft-dist's one-answer pairs cannot hold).

And TPO's triples (`--objective tpo`): a row without a "prompt" whose gold "reference" is stripped of
the prompt taken from "chosen" and "rejected" by TRL's own `_extract_triple_prompt`
(trl.experimental.tpo), or refused by it (a "reference" that does not begin with that prompt);
`refused` marks the rows sft-dist refuses where TRL goes on (an empty gold answer; a gold answer of
several turns, which a one-answer row cannot hold).

Writes Tests/TrainingTests/Fixtures/implicit-prompt-reference.json.
"""
import json

import trl
from trl.data_utils import extract_prompt, maybe_extract_prompt
from trl.experimental.tpo.tpo_trainer import _extract_triple_prompt

from reference_fixtures import fixture_path, write_fixture

OUT = fixture_path("implicit-prompt-reference.json")


def turns(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


TEXT_ROWS = [
    # HH-RLHF's form: the answers differ after "Assistant:" and a space, which goes to the answers.
    {"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.", "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: It is 5."},
    {"chosen": "Q: capital of France? A: Paris", "rejected": "Q: capital of France? A: Lyon"},
    # One answer begins the other: no difference within the shorter, so TRL's loop ends one short.
    {"chosen": "The answer is 4", "rejected": "The answer is 42"},
    {"chosen": "The answer is 42", "rejected": "The answer is 4"},
    # Python indexes code points: a combining accent, an emoji and a CJK character are one each.
    {"chosen": "Caf\u0065\u0301 au lait? Oui", "rejected": "Caf\u0065\u0301 au lait? Non"},
    {"chosen": "Emoji \U0001F600 then yes", "rejected": "Emoji \U0001F600 then no"},
    {"chosen": "\u4f60\u597d\uff0c\u662f", "rejected": "\u4f60\u597d\uff0c\u5426"},
    # Sides that differ inside a character as displayed (an accent; an emoji's second UTF-16 unit):
    # the prompt ends at the code point.
    {"chosen": "Caf\u0065\u0301 it is", "rejected": "Caf\u0065\u0300 it is"},
    {"chosen": "Mood: \U0001F600", "rejected": "Mood: \U0001F601"},
    # "é" as one code point against "e" + U+0301: different rows to Python (not one, as Swift's == has it).
    {"chosen": "Q: \u00e9", "rejected": "Q: e\u0301"},
    # The space rule applies to one space only.
    {"chosen": "Say:  yes", "rejected": "Say:  no"},
    {"chosen": "Say:\tyes", "rejected": "Say:\tno"},
]
TEXT_REFUSED = [
    {"chosen": "yes", "rejected": "no"},
    {"chosen": " yes", "rejected": " no"},
    {"chosen": "ab", "rejected": "b "},
    {"chosen": "a", "rejected": "ab"},
    {"chosen": "yes ", "rejected": "no"},
]
CONVERSATION_ROWS = [
    {"chosen": turns(("user", "What color is the sky?"), ("assistant", "It is blue.")),
     "rejected": turns(("user", "What color is the sky?"), ("assistant", "It is green."))},
    {"chosen": turns(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"), ("user", "2+2?"), ("assistant", "4")),
     "rejected": turns(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"), ("user", "2+2?"), ("assistant", "5"))},
]
CONVERSATION_REFUSED = [
    # The sides differ before their last assistant turn.
    {"chosen": turns(("user", "Hi"), ("assistant", "Hello"), ("user", "2+2?"), ("assistant", "4")),
     "rejected": turns(("user", "Hi"), ("assistant", "Hey"), ("user", "2+2?"), ("assistant", "5"))},
    # The first turns differ: nothing is shared.
    {"chosen": turns(("user", "Hi"), ("assistant", "4")), "rejected": turns(("user", "Yo"), ("assistant", "5"))},
    # The first turns differ as dicts: by code point ("café" composed or not), or by a key beside role
    # and content; nothing is shared.
    {"chosen": turns(("user", "caf\u00e9?"), ("assistant", "yes")), "rejected": turns(("user", "cafe\u0301?"), ("assistant", "no"))},
    {"chosen": [{"role": "user", "content": "Hi", "name": "ann"}, {"role": "assistant", "content": "4"}],
     "rejected": turns(("user", "Hi"), ("assistant", "5"))},
    # One side holds more turns after the shared ones.
    {"chosen": turns(("user", "Hi"), ("assistant", "4")),
     "rejected": turns(("user", "Hi"), ("assistant", "5"), ("user", "sure?"), ("assistant", "6"))},
]


# A text "prompt" beside whole-conversation sides (and their "messages"), as in
# HuggingFaceH4/ultrafeedback_binarized: CPO's and ORPO's maybe_extract_prompt takes the prompt
# from the sides, the text prompt left aside.
H4_ROWS = [
    {"prompt": "What color is the sky?",
     "messages": turns(("user", "What color is the sky?"), ("assistant", "It is blue.")),
     "chosen": turns(("user", "What color is the sky?"), ("assistant", "It is blue.")),
     "rejected": turns(("user", "What color is the sky?"), ("assistant", "It is green."))},
]


TRIPLE_ROWS = [
    {"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.", "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: It is 5.",
     "reference": "\n\nHuman: What is 2+2?\n\nAssistant: It is four, as 2 and 2 make 4."},
    {"chosen": "The answer is 42", "rejected": "The answer is 4", "reference": "The answer is forty-two"},
    {"chosen": turns(("user", "What color is the sky?"), ("assistant", "It is blue.")),
     "rejected": turns(("user", "What color is the sky?"), ("assistant", "It is green.")),
     "reference": turns(("user", "What color is the sky?"), ("assistant", "Blue, on a clear day."))},
]
TRIPLE_REFUSED = [
    # TRL refuses: the gold answer does not begin with the prompt the sides share (the space rule
    # gives the answers the space before "4"/"5", so "Assistant: Four" leaves "It is" behind).
    {"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: It is 4.", "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: It is 5.",
     "reference": "\n\nHuman: What is 2+2?\n\nAssistant: Four."},
    {"chosen": "Q: 1+1? A: 2", "rejected": "Q: 1+1? A: 3", "reference": "q: 1+1? A: two"},
    {"chosen": turns(("user", "Hi"), ("assistant", "4")), "rejected": turns(("user", "Hi"), ("assistant", "5")),
     "reference": turns(("user", "Hey"), ("assistant", "four"))},
    # sft-dist refuses where TRL goes on: an empty gold answer; one of two turns.
    {"chosen": "Q: 1+1? A: 2", "rejected": "Q: 1+1? A: 3", "reference": "Q: 1+1? A:"},
    {"chosen": turns(("user", "Hi"), ("assistant", "4")), "rejected": turns(("user", "Hi"), ("assistant", "5")),
     "reference": turns(("user", "Hi"), ("assistant", "four"), ("user", "sure?"), ("assistant", "yes"))},
]


def triple(row, refused):
    """TRL's split of a triple without a prompt, or None where `_extract_triple_prompt` raises."""
    try:
        out = _extract_triple_prompt(dict(row))
        trl_out = {k: out[k] for k in ("prompt", "chosen", "rejected", "reference")}
    except ValueError:
        trl_out = None
    return {"row": json.dumps(row, ensure_ascii=False), "trl": trl_out, "refused": refused}


def case(row, refused):
    out = maybe_extract_prompt(dict(row))
    if "prompt" not in row:   # DPOTrainer's and KTOTrainer's extract_prompt: the same without a "prompt"
        assert extract_prompt(dict(row)) == out
    out = {k: out[k] for k in ("prompt", "chosen", "rejected")}
    return {"row": json.dumps(row, ensure_ascii=False), "trl": out, "refused": refused}


def main():
    cases = [case(r, False) for r in TEXT_ROWS + CONVERSATION_ROWS + H4_ROWS]
    cases += [case(r, True) for r in TEXT_REFUSED + CONVERSATION_REFUSED]
    triples = [triple(r, False) for r in TRIPLE_ROWS] + [triple(r, True) for r in TRIPLE_REFUSED]
    out = {"trl": trl.__version__, "cases": cases, "triples": triples}
    write_fixture(OUT, out, f"{len(cases)} rows and {len(triples)} triples, TRL {trl.__version__}", compact=False, newline=True)


if __name__ == "__main__":
    main()
