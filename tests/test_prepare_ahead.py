"""The prepare-ahead helper (wadows.wado.prepare_ahead): a large anonymized RAD-69 request is prepared by the
request's thread and a helper process together. What goes out must be exactly what one thread alone sends: the
same documents byte for byte, the same new UIDs, the same errors in the same places; and a helper that dies is
replaced without the caller noticing."""

from __future__ import annotations

import io
import signal
import sys
from pathlib import Path

import psutil
import pydicom
import pytest

from support import ServerProcess, document_responses, envelope, post, rad69_body, registry, validate_envelope

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from ctstudy import build_ct_study  # noqa: E402

SLICES = 40  # enough for the helper (prepare_ahead.MIN_DOCUMENTS is 16)


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> list[tuple[str, str, str]]:
    folder = build_ct_study(SLICES, tmp_path_factory.mktemp("ahead-store"))
    docs = []
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        docs.append((ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID))
    return folder, docs


def _server(folder: Path, tmp: Path, name: str, prepare_ahead: bool) -> ServerProcess:
    data = tmp / name
    data.mkdir()
    config = tmp / f"{name}.toml"
    config.write_text(f'[server]\nprepare_ahead = {str(prepare_ahead).lower()}\n[anonymize]\nkey = "ahead test key"\n')
    return ServerProcess(folder, data, tmp / f"{name}.log", ["--config", str(config), "--unauthenticated", "full"])


@pytest.fixture(scope="module")
def servers(study, tmp_path_factory):
    folder, _ = study
    tmp = tmp_path_factory.mktemp("ahead")
    pair = {"ahead": _server(folder, tmp, "ahead", True), "alone": _server(folder, tmp, "alone", False)}
    yield pair
    for server in pair.values():
        server.stop()


def _retrieve(server: ServerProcess, docs, anonymize="yes", body: str | None = None):
    reply = post(server.endpoint, envelope(body or rad69_body(docs, anonymize=anonymize)))
    assert reply.status == 200, reply.raw[:500]
    mtom = reply.mtom()
    root = reply.envelope()
    validate_envelope(root, mtom.parts)
    status, errors = registry(root)
    answered = [(d["uid"], d["new_uid"], mtom.parts[d["cid"]]) for d in document_responses(root)]
    return status, [(e.get("errorCode"), e.get("location")) for e in errors], answered


def _helpers(server: ServerProcess) -> list[psutil.Process]:
    """The helper processes: the fork server's children (no metadata request runs here: no XPath child)."""
    found = []
    for process in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if "forkserver" in " ".join(process.cmdline()):
                found.extend(process.children())
        except psutil.Error:
            pass
    return found


def test_the_same_answer_with_and_without_the_helper(servers, study):
    _, docs = study
    with_helper = _retrieve(servers["ahead"], docs)
    alone = _retrieve(servers["alone"], docs)
    assert with_helper[0].endswith("Success") and with_helper[1] == []
    assert len(with_helper[2]) == SLICES
    assert with_helper == alone
    assert len({new for _, new, _ in with_helper[2]}) == SLICES
    for (uid, new, data), (_, _, sop) in zip(with_helper[2], docs):
        assert uid == sop and new != sop
        assert pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID == new
    assert len(_helpers(servers["ahead"])) == 1, "the request was not shared with a helper"
    assert _helpers(servers["alone"]) == []


def test_errors_stay_where_they_belong(servers, study):
    """Unknown, malformed and not-anonymized documents among the helper's share: each gets the error a
    thread alone gives it, in the same place, and the others go out."""
    _, docs = study
    study_uid, series_uid, _ = docs[0]
    mixed = list(docs)
    mixed[30] = (study_uid, series_uid, "1.2.3.999999")          # not in the store
    mixed[35] = (study_uid, series_uid, "1.2.3.bad")             # not a UID
    mixed[38] = (study_uid, "1.2.3.4", mixed[38][2])             # in another series than named
    body = rad69_body(mixed, anonymize="yes").replace(
        f"<ihe:DocumentUniqueId>{docs[33][2]}</ihe:DocumentUniqueId><wado:Anonymize>yes",
        f"<ihe:DocumentUniqueId>{docs[33][2]}</ihe:DocumentUniqueId><wado:Anonymize>maybe")
    with_helper = _retrieve(servers["ahead"], None, body=body)
    alone = _retrieve(servers["alone"], None, body=body)
    assert with_helper == alone
    assert with_helper[0].endswith("PartialSuccess")
    assert len(with_helper[1]) == 4 and len(with_helper[2]) == SLICES - 4


def test_a_helper_that_dies_is_replaced(servers, study):
    _, docs = study
    first = _retrieve(servers["ahead"], docs)
    [helper] = _helpers(servers["ahead"])
    helper.send_signal(signal.SIGKILL)
    helper.wait(10)
    assert _retrieve(servers["ahead"], docs) == first
    [replacement] = _helpers(servers["ahead"])
    assert replacement.pid != helper.pid
    assert _retrieve(servers["ahead"], docs) == first
    log = servers["ahead"].log()
    assert "Traceback" not in log


def test_small_and_plain_requests_do_not_use_the_helper(study, tmp_path):
    folder, docs = study
    server = _server(folder, tmp_path, "fresh", True)
    try:
        _retrieve(server, docs[:15])
        _retrieve(server, docs, anonymize=None)
        assert _helpers(server) == []
    finally:
        server.stop()


def test_the_helper_prepares_what_the_request_would(study, tmp_path):
    """In process: the helper's copies are the ones prepare_copy makes here, file identity included."""
    from wadows import config as cfg
    from wadows.runtime import build_app
    from wadows.store.file_identity import file_identity
    from wadows.wado.anonymized import prepare_copy

    folder, docs = study
    app, _ = build_app(cfg.load(None), folder, tmp_path)
    source = app.source
    jobs = [(sop, ("1.2.840.10008.1.2.1",)) for _, _, sop in docs[:20]] + [("1.2.3.4", ("1.2.840.10008.1.2.1",))]
    pending = source.prepare_ahead.submit(jobs)
    assert pending is not None
    assert source.prepare_ahead.submit(jobs) is None, "one request at a time"
    try:
        for index, (sop, accepted) in enumerate(jobs[:-1]):
            ready = pending.result(index)
            record = source.store.locate(sop)
            with source.store.open(record) as fp:
                plan, target, copy = prepare_copy(source.deidentifier, fp, record, accepted)
                assert ready.identity == file_identity(fp)
            assert (ready.locator, ready.new_sop_instance_uid, ready.target, ready.copy) == \
                   (record.locator, plan.new_sop_instance_uid, target, copy)
        assert pending.result(len(jobs) - 1) is None  # not in the store
    finally:
        pending.close()
        source.prepare_ahead.close()
