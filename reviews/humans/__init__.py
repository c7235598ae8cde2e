"""Measuring the humans (issue 17, SPEC §8): blind review samples and double review.

| module | what |
|---|---|
| `models` | `BlindAnswer` (one's own answer before the proposal is shown), `DoubleVote` (one of two decisions) |
| `sampling` | which new actions are blind or double-review samples |
| `answers` | parsing a person's JSON answer strictly (no NaN, 1e400, NUL, lone surrogates, deep nesting) |
| `blind` | recording a blind answer and its agreement evidence; what a blind page shows |
| `double` | the two independent decisions, their agreement evidence, the senior's tie-break |
| `checks` | what approve and reject ask first (`humans_decision_check`) |
| `views` | the browser endpoints (`POST /actions/<id>/blind`) |

The evidence metrics they write are `blind.*` and `double.*` (deployments/counters.py); the
gate reads them through deployments/gate_humans.py.
"""
