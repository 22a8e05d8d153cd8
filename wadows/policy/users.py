"""The users file: user names and salted scrypt hashes of their passwords, for HTTP Basic authentication.

Format: UTF-8 text, one JSON object per line, e.g.
    {"name": "alice", "algorithm": "scrypt", "n": 16384, "r": 8, "p": 1, "salt": "<hex>", "hash": "<hex>"}
Blank lines are ignored; anything else that is not such an object makes the whole file invalid (no user then
verifies: a half-read file must not grant access). The file is written by `wadows user add/remove` only: mode
0600, replaced atomically, so a running server picks up the change at its next request (the file's identity is
checked on every verification).

Suggested name: users.jsonl in the data directory. Writers serialise on a lock file beside it (users.jsonl.lock).
No password, hash or salt ever appears in an exception text or a log line.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass as getpass_module
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TextIO

log = logging.getLogger(__name__)

# Conservative: what fits in a log line, a shell argument and an HTTP Basic user-id (which cannot hold ':').
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")

# Defaults for new hashes (about 16 MiB and some tens of milliseconds per verification).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32
# Bounds on parameters read from a file, so that an edited file cannot make each login take gigabytes.
_MAX_SCRYPT_MEMORY = 256 * 1024 * 1024


class UsersFileError(ValueError):
    """The users file cannot be read or is not in the expected format (the text names the path and line only)."""


def check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError("a user name is 1 to 64 characters: letters, digits and . _ @ + - "
                         "(starting with a letter or digit)")


@dataclass(frozen=True)
class _Entry:
    n: int
    r: int
    p: int
    salt: bytes
    hash: bytes = b""

    def derive(self, password: str, length: int) -> bytes:
        return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=self.salt, n=self.n, r=self.r, p=self.p,
                              maxmem=_scrypt_memory(self.n, self.r, self.p) + 1024 * 1024, dklen=length)

    def matches(self, password: str) -> bool:
        return hmac.compare_digest(self.derive(password, len(self.hash)), self.hash)

    def to_json(self, name: str) -> str:
        return json.dumps({"name": name, "algorithm": "scrypt", "n": self.n, "r": self.r, "p": self.p,
                           "salt": self.salt.hex(), "hash": self.hash.hex()})


def _scrypt_memory(n: int, r: int, p: int) -> int:
    # What OpenSSL checks against maxmem: the V array plus the B array.
    return 128 * r * (n + 2) + 128 * r * p


def _new_entry(password: str) -> _Entry:
    entry = _Entry(SCRYPT_N, SCRYPT_R, SCRYPT_P, secrets.token_bytes(_SALT_BYTES))
    return _Entry(entry.n, entry.r, entry.p, entry.salt, entry.derive(password, _HASH_BYTES))


def _parse_line(obj: object) -> tuple[str, _Entry]:
    if not isinstance(obj, dict) or obj.get("algorithm") != "scrypt":
        raise ValueError("not a scrypt entry")
    name = obj.get("name")
    check_name(name)
    n, r, p = obj.get("n"), obj.get("r"), obj.get("p")
    if not all(type(v) is int for v in (n, r, p)):
        raise ValueError("scrypt parameters must be integers")
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or _scrypt_memory(n, r, p) > _MAX_SCRYPT_MEMORY:
        raise ValueError("scrypt parameters out of range")
    salt, digest = bytes.fromhex(obj.get("salt", "")), bytes.fromhex(obj.get("hash", ""))
    if len(salt) < 16 or not 16 <= len(digest) <= 64:
        raise ValueError("salt or hash of the wrong length")
    return name, _Entry(n, r, p, salt, digest)


def _parse(text: str, path: Path) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            name, entry = _parse_line(json.loads(line))
        except (ValueError, TypeError):  # json.JSONDecodeError is a ValueError; its text would quote the line
            raise UsersFileError(f"{path}, line {number}: not a valid user entry") from None
        if name in entries:
            raise UsersFileError(f"{path}, line {number}: user {name!r} appears twice")
        entries[name] = entry
    return entries


class UsersFile:
    """A users file, re-read whenever it has been replaced or changed (checked on each verify/names call)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._entries: dict[str, _Entry] = {}
        # A missing user is checked against this entry so that it costs one scrypt, like a wrong password.
        self._dummy = _Entry(SCRYPT_N, SCRYPT_R, SCRYPT_P, secrets.token_bytes(_SALT_BYTES),
                             secrets.token_bytes(_HASH_BYTES))
        # Passwords that verified since the last reload, as keyed MACs (the key never leaves this process): a
        # client that sends Basic credentials with every request would otherwise pay one scrypt per request.
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}
        self._reported: str | None = None

    # -- reading

    def _current(self) -> dict[str, _Entry]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            signature, entries = None, {}
            with self._lock:
                if self._signature != signature:
                    self._signature, self._entries, self._verified = signature, entries, {}
                return self._entries
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            signature = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            with self._lock:
                if signature == self._signature:
                    return self._entries
            try:
                entries = _parse(f.read().decode("utf-8"), self.path)
            except UnicodeDecodeError:
                raise UsersFileError(f"{self.path}: not UTF-8 text") from None
        with self._lock:
            self._signature, self._entries, self._verified = signature, entries, {}
            return entries

    def _entries_or_none(self) -> dict[str, _Entry]:
        """For the request path: an unreadable or invalid file lets nobody in (and says so in the log)."""
        try:
            entries = self._current()
        except (UsersFileError, OSError) as exc:
            problem = _describe(exc)
            if problem != self._reported:  # once per problem, not once per request
                log.error("users file unusable, no user can authenticate: %s", problem)
                self._reported = problem
            return {}
        self._reported = None
        return entries

    def names(self) -> list[str]:
        return sorted(self._current())

    def verify(self, name: str, password: str) -> bool:
        """True when `name` exists and `password` is its password. Unknown names cost one scrypt as well."""
        entries = self._entries_or_none()
        entry = entries.get(name) if isinstance(name, str) else None
        if not isinstance(password, str):
            password = ""
        mac = hmac.new(self._cache_key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        if entry is not None:
            with self._lock:
                known = self._verified.get(name)
            if known is not None and hmac.compare_digest(known, mac):
                return True
        if entry is None:
            self._dummy.matches(password)
            return False
        if not entry.matches(password):
            return False
        with self._lock:
            if self._entries is entries:  # not reloaded meanwhile: the cache belongs to this version
                self._verified[name] = mac
        return True

    # -- writing (the CLI; a server only reads)

    def add(self, name: str, password: str) -> bool:
        """Add `name` or replace its password; True when it replaced an existing user."""
        check_name(name)
        if not isinstance(password, str) or not password:
            raise ValueError("the password must not be empty")
        entry = _new_entry(password)
        with self._exclusive():
            entries = dict(self._current())
            replaced = name in entries
            entries[name] = entry
            self._write(entries)
        return replaced

    def remove(self, name: str) -> bool:
        """Remove `name`; False when there was no such user (the file is then left as it was)."""
        with self._exclusive():
            entries = dict(self._current())
            if name not in entries:
                return False
            del entries[name]
            self._write(entries)
        return True

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        # Two `wadows user add` at once must not lose one of the two users: read-modify-write under a lock file.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, entries: dict[str, _Entry]) -> None:
        text = "".join(entries[name].to_json(name) + "\n" for name in sorted(entries))
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")  # 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fchmod(f.fileno(), 0o600)
                _keep_owner(f.fileno(), self.path)
                os.fsync(f.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        _sync_directory(self.path.parent)
        with self._lock:
            self._signature = None  # read back on next use, like any other process would


def _keep_owner(fd: int, path: Path) -> None:
    # root editing the file of a server that runs as another user must leave that user able to read it.
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        os.fchown(fd, st.st_uid, st.st_gid)


def _sync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror or type(exc).__name__)
    return str(exc)


# -- command functions for `wadows user add` / `wadows user remove` (argparse wiring lives in wadows.cli)

PASSWORD_PROMPT = "prompt"
PASSWORD_STDIN = "stdin"


def add_user_command(path: Path | str, name: str, password_source: str = PASSWORD_PROMPT, *,
                     stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None,
                     getpass: Callable[[str], str] = getpass_module.getpass) -> int:
    """Add a user or replace its password. `password_source` is "prompt" (asked twice, not echoed) or "stdin"
    (`--password-stdin`: all of standard input, one trailing newline removed). Returns the exit code."""
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    try:
        check_name(name)
    except ValueError as exc:
        print(f"wadows: {exc}", file=stderr)
        return 1
    if password_source == PASSWORD_STDIN:
        password = stdin.read()
        password = password[:-1] if password.endswith("\n") else password
        password = password[:-1] if password.endswith("\r") else password
        if "\n" in password or "\r" in password:
            print("wadows: the password on standard input must be a single line", file=stderr)
            return 1
    elif password_source == PASSWORD_PROMPT:
        password = getpass(f"Password for {name}: ")
        if getpass("Repeat the password: ") != password:
            print("wadows: the passwords do not match; nothing changed", file=stderr)
            return 1
    else:
        raise ValueError(f"unknown password source {password_source!r} (use 'prompt' or 'stdin')")
    if not password:
        print("wadows: empty password refused; nothing changed", file=stderr)
        return 1
    users = UsersFile(path)
    try:
        replaced = users.add(name, password)
    except (UsersFileError, OSError) as exc:
        print(f"wadows: cannot update the users file: {_describe(exc)}", file=stderr)
        return 1
    print(f"{'Changed the password of' if replaced else 'Added'} user {name} in {users.path}", file=stdout)
    return 0


def remove_user_command(path: Path | str, name: str, *, stdout: TextIO | None = None,
                        stderr: TextIO | None = None) -> int:
    """Remove a user. Returns the exit code: 0 removed, 1 no such user or the file could not be updated."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    users = UsersFile(path)
    try:
        removed = users.remove(name)
    except (UsersFileError, OSError) as exc:
        print(f"wadows: cannot update the users file: {_describe(exc)}", file=stderr)
        return 1
    if not removed:
        print(f"wadows: no user {name!r} in {users.path}; nothing changed", file=stderr)
        return 1
    print(f"Removed user {name} from {users.path}", file=stdout)
    return 0
