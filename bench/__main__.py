"""``python -m bench [reads|sync ...]``: see bench/reads.py and bench/sync.py."""

import sys

from bench import reads, sync

COMMANDS = {"reads": reads.main, "sync": sync.main}

if __name__ == "__main__":
    args = sys.argv[1:] or ["reads"]
    command = COMMANDS.get(args[0])
    if command is None:
        sys.exit(f"usage: python -m bench [{'|'.join(COMMANDS)}] ...")
    command(args[1:])
