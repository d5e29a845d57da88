"""``python -m bench [reads|sync|sync-openstack|admin|attack ...]``: see bench/reads.py, bench/sync.py,
bench/sync_openstack.py, bench/admin.py and bench/attack.py."""

import sys

from bench import admin, attack, reads, sync, sync_openstack

COMMANDS = {
    "reads": reads.main,
    "sync": sync.main,
    "sync-openstack": sync_openstack.main,
    "admin": admin.main,
    "attack": attack.main,
}

if __name__ == "__main__":
    args = sys.argv[1:] or ["reads"]
    command = COMMANDS.get(args[0])
    if command is None:
        sys.exit(f"usage: python -m bench [{'|'.join(COMMANDS)}] ...")
    command(args[1:])
