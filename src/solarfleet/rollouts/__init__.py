"""Parameter rollouts: one value set across many units in phases, watched as it lands."""
