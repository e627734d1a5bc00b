"""One group's delivery in its own process, as a `deliver` mapped task runs it (used by bench/transfer.py).

Usage: python bench/send_group.py CONFIG_JSON SOURCE_DIR PARALLEL
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from seqshare.transfer import FileToSend, send_files
from seqshare.transfer.sftp import SftpConfig, SftpRemote


def main() -> None:
    config = SftpConfig(**{k: tuple(v) if k == "ciphers" else v for k, v in json.loads(sys.argv[1]).items()})
    source, parallel = Path(sys.argv[2]), int(sys.argv[3])
    files = [
        FileToSend(local_path=p, remote_path=str(p.relative_to(source)), size=p.stat().st_size)
        for p in sorted(source.rglob("*"))
        if p.is_file()
    ]
    send_files(files, lambda: SftpRemote.connect(config), parallel=parallel)


if __name__ == "__main__":
    main()
