"""Routing: pure decisions (policy, decision), client state (health, budget), execution.

The layers, from pure to effectful: :mod:`~genrouter.routing.policy` and
:mod:`~genrouter.routing.decision` are plain functions over data; :mod:`~genrouter.routing.planner`
gathers the facts a decision needs; :mod:`~genrouter.routing.executor` carries a plan out.
"""

from genrouter.types import CandidateEvaluation, RouteDecision

__all__ = ["CandidateEvaluation", "RouteDecision"]
