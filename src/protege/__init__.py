"""Protégé: learning behaviour from people (imitation learning, inverse RL, reward models)."""

__version__ = "0.1.0"
