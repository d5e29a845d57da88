"""``python -m bench [reads|sync|admin ...]``: see bench/reads.py, bench/sync.py, bench/admin.py."""

import sys

from bench import admin, reads, sync

COMMANDS = {"reads": reads.main, "sync": sync.main, "admin": admin.main}

if __name__ == "__main__":
    args = sys.argv[1:] or ["reads"]
    command = COMMANDS.get(args[0])
    if command is None:
        sys.exit(f"usage: python -m bench [{'|'.join(COMMANDS)}] ...")
    command(args[1:])
