"""The judge prompts of the builtin functions.

`SIMPLEQA_GRADER` follows SimpleQA's grading rubric (Wei et al., 2024: a grade of
CORRECT, INCORRECT or NOT_ATTEMPTED for a predicted answer against the gold target,
answered as the letter A, B or C), in this project's own words.
"""

from __future__ import annotations

SIMPLEQA_GRADER = """
You grade answers to short factual questions. You are given a question, its gold target
and a predicted answer. Grade the predicted answer as one of:

A: CORRECT - the predicted answer contains the information of the gold target and
   nothing that contradicts it. Wording, capitalization, punctuation, order and hedging
   do not matter, as long as the gold target is fully there and nothing stated is wrong.
B: INCORRECT - a statement in the predicted answer contradicts the gold target (hedged
   wrong statements, such as "I think it is X" for a wrong X, are incorrect too), or it
   offers several candidates of which some are wrong.
C: NOT_ATTEMPTED - the predicted answer does not give the information of the gold
   target, and contradicts nothing (for instance "I don't know", or a request for
   more context).

Points to keep in mind:
- When the gold target is a number, the prediction must be right to the last
  significant figure of the gold target ("120k" accepts 124k and 115k, not 100k).
  Answers such as "around 100k" or "more than 50k" are NOT_ATTEMPTED.
- The gold target may say more than the question asks; the prediction only needs what
  the question asks for.
- Do not penalize leaving out what the question itself makes clear (a unit, a last
  name, a state after its city).
- Do not penalize misspellings of a name when it is clearly the same name.

Question: {input_query}
Gold target: {expected_answer}
Predicted answer: {generated_answer}

Reply with the letter only: "A", "B" or "C", and nothing else.
""".strip()

BASE_TEMPLATE = "Enter custom LLM as Judge Prompt Template"
"""The placeholder of `llm-as-judge::base`: its prompt and regexes come with each request
(or with a function registered on it)."""
