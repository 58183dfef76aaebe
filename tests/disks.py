"""A real small disk (a 1 MiB tmpfs) that a test fills up or remounts read-only: needs root
and ``mount``; elsewhere the tests that use it skip with the reason."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> None:
        """Write until the disk has no byte left."""
        fd = os.open(self.path / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (65536, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError:
                        break
        finally:
            os.close(fd)

    def read_only(self) -> None:
        """Remount it read-only (which needs no file open for writing on it)."""
        _mount("-o", "remount,ro", str(self.path))

    def writable(self) -> None:
        """Remount it read-write again."""
        _mount("-o", "remount,rw", str(self.path))


def _mount(*arguments: str) -> None:
    subprocess.run(["mount", *arguments], check=True, capture_output=True, timeout=10)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    path = tmp_path / "small-disk"
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk needs root")
    try:
        _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path))
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=10)
