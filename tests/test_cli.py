"""The command line as scripts use it: exit codes, summaries, clear errors."""

from __future__ import annotations

import subprocess
import sys

import requests

from support import ServerProcess


def wadows(*args, **kw):
    return subprocess.run([sys.executable, "-m", "wadows", *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kw)


def test_index_prints_a_summary_and_is_incremental(store_dir, tmp_path):
    first = wadows("index", store_dir, "--data-dir", tmp_path)
    assert first.returncode == 0, first.stderr
    assert "16 added" in first.stdout and "2 non-DICOM" in first.stdout  # README.txt, notes.txt
    second = wadows("index", store_dir, "--data-dir", tmp_path)
    assert " 0 added" in second.stdout and "unchanged" in second.stdout
    assert (tmp_path / "index.sqlite3").exists()


def test_serve_refuses_a_missing_store_clearly(tmp_path):
    done = wadows("serve", "--store", tmp_path / "nope", "--data-dir", tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_serve_reports_configuration_errors(tmp_path, store_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'eighty'\n")
    done = wadows("serve", "--store", store_dir, "--data-dir", tmp_path, "--config", bad)
    assert done.returncode == 2 and "server.port must be int" in done.stderr
    bad.write_text("[servre]\nport = 1\n")
    done = wadows("serve", "--store", store_dir, "--data-dir", tmp_path, "--config", bad)
    assert done.returncode == 2 and "unknown section [servre]" in done.stderr


def test_a_key_of_digits_stays_text(tmp_path, store_dir):
    """WADOWS_ANONYMIZE_KEY=123456 is the key "123456" (environment values otherwise read as TOML literals);
    an unquoted number in the file is a configuration error, not a traceback."""
    from wadows import config as cfg

    for raw in ("123456", "1e5", "true", "0x1f"):
        assert cfg.anonymization_key(tmp_path, cfg.load(None, {"WADOWS_ANONYMIZE_KEY": raw}).get("anonymize", "key")) \
            == raw.encode()
    assert cfg.load(None, {"WADOWS_SERVER_PORT": "8081"}).get("server", "port") == 8081  # numbers still numbers
    bad = tmp_path / "bad.toml"
    bad.write_text("[anonymize]\nkey = 123456\n")
    done = wadows("deidentify", store_dir, tmp_path / "out", "--config", bad)
    assert done.returncode == 2 and "anonymize.key must be text" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_repository_uid_flag_and_config_file(store_dir, tmp_path):
    conf = tmp_path / "wadows.toml"
    conf.write_text('[repository]\nunique_id = "1.2.3.4.5"\n[server]\nmax_documents = 7\n')
    server = ServerProcess(store_dir, tmp_path / "d1", tmp_path / "log1", ["--config", str(conf)])
    try:
        assert server.health()["repositoryUniqueId"] == "1.2.3.4.5"
    finally:
        server.stop()
    server = ServerProcess(store_dir, tmp_path / "d1", tmp_path / "log2", ["--config", str(conf),
                                                                         "--repository-uid", "1.2.3.9"])
    try:
        assert server.health()["repositoryUniqueId"] == "1.2.3.9"
        log = server.log()
        assert "endpoint" in log and server.endpoint in log and "examples/retrieve_study.py" in log
    finally:
        server.stop()


def test_generated_repository_uid_survives_a_restart(store_dir, tmp_path):
    uids = []
    for run in range(2):
        server = ServerProcess(store_dir, tmp_path / "data", tmp_path / f"log{run}")
        try:
            uids.append(server.health()["repositoryUniqueId"])
        finally:
            server.stop()
    assert uids[0] == uids[1] and uids[0].startswith("2.25.")


def test_two_workers_serve_the_same_answers(store_dir, tmp_path, sample):
    server = ServerProcess(store_dir, tmp_path / "data", tmp_path / "log", ["--workers", "2"])
    try:
        study = sample[0]["study_uid"]
        listings = {requests.get(f"{server.url}/studies/{study}/instances", timeout=5).content for _ in range(6)}
        assert len(listings) == 1
    finally:
        server.stop()
