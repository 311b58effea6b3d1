"""The ground floor: what agents, envs and fire_rl all need and what needs none of them (input checks, step
arithmetic, replay buffers). It imports nothing of the project, so no import runs back up from agents or envs."""
