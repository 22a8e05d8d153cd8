"""The users file: scrypt hashes, 0600, atomic replacement, reload on change, and the CLI command functions."""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import stat
import time

import pytest

from wadows.policy.users import UsersFile, UsersFileError, add_user_command, remove_user_command

PASSWORD = "correct horse battery staple"


@pytest.fixture
def path(tmp_path):
    return tmp_path / "conf" / "users.jsonl"


def test_round_trip_across_instances(path):
    users = UsersFile(path)
    assert users.add("alice", PASSWORD) is False
    assert users.add("bob.smith@example.org", "other secret") is False
    assert users.verify("alice", PASSWORD)
    again = UsersFile(path)  # another process reading the same file
    assert again.names() == ["alice", "bob.smith@example.org"]
    assert again.verify("alice", PASSWORD) and again.verify("bob.smith@example.org", "other secret")


def test_wrong_password_and_unknown_user(path):
    users = UsersFile(path)
    users.add("alice", PASSWORD)
    assert not users.verify("alice", PASSWORD + "x")
    assert not users.verify("alice", "")
    assert not users.verify("Alice", PASSWORD)  # names are case-sensitive
    assert not users.verify("mallory", PASSWORD)
    assert not UsersFile(path.with_name("absent")).verify("alice", PASSWORD)


def test_file_holds_scrypt_parameters_salt_and_hash_but_no_password(path):
    users = UsersFile(path)
    users.add("alice", PASSWORD)
    users.add("bob", PASSWORD)
    raw = path.read_bytes()
    assert PASSWORD.encode() not in raw
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert [line["name"] for line in lines] == ["alice", "bob"]
    for line in lines:
        assert (line["algorithm"], line["n"], line["r"], line["p"]) == ("scrypt", 2**14, 8, 1)
        assert len(bytes.fromhex(line["salt"])) == 16 and len(bytes.fromhex(line["hash"])) == 32
    assert lines[0]["salt"] != lines[1]["salt"] and lines[0]["hash"] != lines[1]["hash"]  # salted


def test_replace_and_remove(path):
    users = UsersFile(path)
    users.add("alice", PASSWORD)
    assert users.verify("alice", PASSWORD)  # now in the verified cache
    assert users.add("alice", "new password") is True
    assert not users.verify("alice", PASSWORD)
    assert users.verify("alice", "new password")
    assert users.remove("alice") is True
    assert users.remove("alice") is False
    assert not users.verify("alice", "new password")
    assert users.names() == []


def test_created_0600_and_stays_0600_after_replacement(path):
    users = UsersFile(path)
    users.add("alice", PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # someone loosened it by hand
    users.add("bob", PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Atomic replacement leaves no temporary file behind, only the file and its lock file.
    assert sorted(p.name for p in path.parent.iterdir()) == ["users.jsonl", "users.jsonl.lock"]


def test_replaced_not_rewritten_in_place(path):
    users = UsersFile(path)
    users.add("alice", PASSWORD)
    before = path.stat().st_ino
    with open(path, "rb") as reader:  # a reader holding the old file keeps a complete old version
        users.add("bob", PASSWORD)
        assert b"bob" not in reader.read()
    assert path.stat().st_ino != before


def test_running_server_sees_added_and_removed_users_without_restart(path):
    server = UsersFile(path)
    cli = UsersFile(path)
    cli.add("alice", PASSWORD)
    assert server.verify("alice", PASSWORD)
    assert not server.verify("bob", PASSWORD)
    cli.add("bob", PASSWORD)
    assert server.verify("bob", PASSWORD)
    cli.remove("alice")  # alice's success is cached in `server`: the reload must drop it
    assert not server.verify("alice", PASSWORD)
    cli.add("bob", "changed")
    assert not server.verify("bob", PASSWORD)
    assert server.verify("bob", "changed")
    path.unlink()
    assert not server.verify("bob", "changed")


@pytest.mark.parametrize("name", ["", "a:b", "a b", "-x", ".x", "x" * 65, "é", "a/b", "a\nb", None])
def test_bad_names_refused_and_nothing_written(path, name):
    with pytest.raises(ValueError):
        UsersFile(path).add(name, PASSWORD)
    assert not path.exists()


def test_empty_password_refused(path):
    with pytest.raises(ValueError):
        UsersFile(path).add("alice", "")
    assert not path.exists()


def test_unknown_user_costs_about_as_much_as_a_wrong_password(path):
    users = UsersFile(path)
    users.add("alice", PASSWORD)

    def median_seconds(name):
        times = []
        for _ in range(7):
            start = time.perf_counter()
            assert not users.verify(name, "wrong password")
            times.append(time.perf_counter() - start)
        return sorted(times)[3]

    wrong, unknown = median_seconds("alice"), median_seconds("nobody")
    # Both run one scrypt; a shortcut for unknown names would make the ratio tiny (microseconds vs milliseconds).
    assert 0.5 < unknown / wrong < 2.0, (unknown, wrong)


def test_invalid_file_lets_nobody_in_and_never_shows_its_content(path, caplog):
    users = UsersFile(path)
    users.add("alice", PASSWORD)
    good = path.read_text()
    secret_hash = json.loads(good)["hash"]
    broken = json.loads(good)
    broken["salt"] = "zz" + broken["salt"]
    path.write_text(good + json.dumps(broken) + "\n")
    with caplog.at_level(logging.DEBUG):
        assert not users.verify("alice", PASSWORD)  # fail closed, also for the valid line
    assert "line 2" in caplog.text and secret_hash not in caplog.text
    with pytest.raises(UsersFileError) as info:
        users.names()
    assert secret_hash not in str(info.value) and "line 2" in str(info.value)
    with pytest.raises(UsersFileError):
        users.add("bob", PASSWORD)  # never rewrite (and lose) a file that could not be read
    assert json.dumps(broken) in path.read_text()


def test_duplicate_names_make_the_file_invalid(path):
    users = UsersFile(path)
    users.add("alice", PASSWORD)
    path.write_text(path.read_text() * 2)
    assert not users.verify("alice", PASSWORD)


def _add_one(path, i):
    UsersFile(path).add(f"user{i}", PASSWORD)


def test_concurrent_adds_from_processes_lose_nobody(path):
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_one, args=(path, i)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert UsersFile(path).names() == [f"user{i}" for i in range(6)]


# -- command functions


def test_add_command_from_stdin(path):
    out, err = io.StringIO(), io.StringIO()
    assert add_user_command(path, "alice", "stdin", stdin=io.StringIO(PASSWORD + "\r\n"), stdout=out, stderr=err) == 0
    assert UsersFile(path).verify("alice", PASSWORD)
    assert "Added user alice" in out.getvalue() and PASSWORD not in out.getvalue() + err.getvalue()
    assert add_user_command(path, "alice", "stdin", stdin=io.StringIO("second\n"), stdout=out, stderr=err) == 0
    assert "Changed the password of user alice" in out.getvalue()
    assert UsersFile(path).verify("alice", "second")


@pytest.mark.parametrize("text", ["", "\n", "two\nlines\n"])
def test_add_command_refuses_empty_or_multiline_stdin(path, text):
    err = io.StringIO()
    assert add_user_command(path, "alice", "stdin", stdin=io.StringIO(text), stdout=io.StringIO(), stderr=err) == 1
    assert not path.exists() and err.getvalue()


def test_add_command_prompts_twice(path):
    answers = iter([PASSWORD, PASSWORD])
    prompts = []

    def fake_getpass(prompt):
        prompts.append(prompt)
        return next(answers)

    assert add_user_command(path, "alice", "prompt", getpass=fake_getpass, stdout=io.StringIO()) == 0
    assert len(prompts) == 2 and UsersFile(path).verify("alice", PASSWORD)


def test_add_command_mismatch_changes_nothing(path):
    answers = iter([PASSWORD, PASSWORD + "!"])
    err = io.StringIO()
    assert add_user_command(path, "alice", "prompt", getpass=lambda _: next(answers), stderr=err) == 1
    assert "do not match" in err.getvalue() and PASSWORD not in err.getvalue()
    assert not path.exists()


def test_add_command_bad_name(path):
    err = io.StringIO()
    assert add_user_command(path, "a:b", "stdin", stdin=io.StringIO(PASSWORD), stderr=err) == 1
    assert "user name" in err.getvalue() and not path.exists()


def test_remove_command(path):
    UsersFile(path).add("alice", PASSWORD)
    out, err = io.StringIO(), io.StringIO()
    assert remove_user_command(path, "alice", stdout=out, stderr=err) == 0
    assert "Removed user alice" in out.getvalue()
    assert remove_user_command(path, "alice", stdout=out, stderr=err) == 1
    assert "no user 'alice'" in err.getvalue()
    assert UsersFile(path).names() == []


def test_commands_report_an_unreadable_file(path):
    path.parent.mkdir(parents=True)
    path.write_text("not json\n")
    err = io.StringIO()
    assert add_user_command(path, "alice", "stdin", stdin=io.StringIO(PASSWORD), stderr=err) == 1
    assert remove_user_command(path, "alice", stderr=err) == 1
    assert "line 1" in err.getvalue() and "not json" not in err.getvalue()
    assert path.read_text() == "not json\n"


def test_an_unusable_file_is_logged_once_not_per_request(path, caplog):
    path.parent.mkdir(parents=True)
    path.write_text("garbage\n")
    users = UsersFile(path)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert not users.verify("alice", PASSWORD)
    assert len(caplog.records) == 1
