"""Pure objective functions, one per paper. Each returns `(loss, metrics)`; none touches files or envs."""
