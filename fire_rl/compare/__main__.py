"""`python -m fire_rl.compare DIR ...` (the command is in cli.py)."""

from fire_rl.compare.cli import main

if __name__ == "__main__":
    main()
