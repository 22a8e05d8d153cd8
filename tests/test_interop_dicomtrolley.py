"""Interop: dicomtrolley (PyPI), a RAD-69 consumer used in production, through its own code path.

dicomtrolley.rad69.Rad69 posts its own hand-written SOAP (quirks and all: `wsa:Action` with a trailing space, a
stray text node in the Body, one RetrieveImagingDocumentSetRequest per study in one Body, a foreign `wsa:To`, a
hard-coded RepositoryUniqueId, JPEG Lossless / Implicit / Explicit VR Little Endian as the accepted syntaxes) with a
requests session and reads the multipart answer with its own streaming parser (part 1 is SOAP, the rest DICOM, in
order). Its QidoRS searcher finds a study's and a series' instances through our QIDO-RS listing.

dicomtrolley always names repository 1.3.6.1.4.1000, and our server refuses documents of another repository
(XDSUnknownRepositoryId, as ITI-43 asks), so the server here answers to that UID (`--repository-uid`), as a site
serving dicomtrolley users would run it. What dicomtrolley does with errors is checked too: it only looks for them
in a non-multipart answer, and ours are always MTOM, so a refused or unknown document is dropped without an error.

Datasets are compared with the stored ones: equal when the stored syntax is one dicomtrolley accepts, otherwise
(transcoded by the server) the same pixels and the same public attributes apart from those a transcoding changes.
Skipped only when dicomtrolley cannot be imported.
"""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
import requests
from lxml import etree

from support import RAD, XDS, ServerProcess

pytest.importorskip("dicomtrolley", reason="dicomtrolley (a RAD-69 consumer, in the test extra) is not installed")
from dicomtrolley.core import InstanceReference, QueryLevels  # noqa: E402
from dicomtrolley.qido_rs import HierarchicalQuery, QidoRS, RelationalQuery  # noqa: E402
from dicomtrolley.rad69 import Rad69  # noqa: E402
from dicomtrolley.trolley import Trolley  # noqa: E402

# Attributes a transcoding to an uncompressed syntax may change or drop (colour model of decoded JPEG, the lossy
# flags, trailing padding); everything else must come back as stored.
TRANSCODING_MAY_CHANGE = {"PixelData", "DataSetTrailingPadding", "PhotometricInterpretation", "PlanarConfiguration",
                          "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod"}


def dicomtrolley_request(instances) -> etree._Element:
    """The Body dicomtrolley posts, rendered by dicomtrolley itself."""
    xml = Rad69(requests.Session(), "http://unused").create_instances_request(instances)
    return etree.fromstring(xml.strip().encode())


def reference(row) -> InstanceReference:
    return InstanceReference(study_uid=row["study_uid"], series_uid=row["series_uid"],
                             instance_uid=row["sop_instance_uid"])


@pytest.fixture(scope="module")
def world(store_dir, sample, crlf, tmp_path_factory):
    sent = dicomtrolley_request([reference(sample[0])])
    repository = sent.findtext(f".//{{{XDS}}}RepositoryUniqueId")
    syntaxes = [s.text for s in sent.iter(f"{{{RAD}}}TransferSyntaxUID")]
    root = tmp_path_factory.mktemp("interop-dicomtrolley")
    server = ServerProcess(store_dir, root / "data", root / "server.log",
                           ["--unauthenticated", "full", "--repository-uid", repository])
    session = requests.Session()
    session.trust_env = False  # loopback only, whatever proxy the environment names
    yield {"server": server, "session": session, "sample": sample, "crlf": crlf, "syntaxes": syntaxes,
           "repository": repository}
    session.close()
    server.stop()


def assert_same_as_stored(got: pydicom.Dataset, row: dict, syntaxes: list[str]) -> None:
    stored = pydicom.dcmread(row["path"])
    syntax = got.file_meta.TransferSyntaxUID
    assert syntax in syntaxes, f"{row['path'].name}: {syntax.name} is not a syntax dicomtrolley asked for"
    if syntax == stored.file_meta.TransferSyntaxUID:
        assert got == stored, row["path"]
        return

    def public(ds):
        return {t for t in ds.keys() if not t.is_private and ds[t].keyword not in TRANSCODING_MAY_CHANGE}

    assert public(got) == public(stored), row["path"]
    for tag in public(stored):
        assert got[tag].value == stored[tag].value, (row["path"], stored[tag].keyword)
    if "PixelData" in stored:
        assert np.array_equal(got.pixel_array, stored.pixel_array), row["path"]


def assert_all_as_stored(datasets, rows, syntaxes) -> None:
    by_uid = {r["sop_instance_uid"]: r for r in rows}
    got = {}
    for ds in datasets:
        assert ds.SOPInstanceUID not in got, f"{ds.SOPInstanceUID} came twice"
        got[ds.SOPInstanceUID] = ds
    assert sorted(got) == sorted(by_uid)
    for uid, ds in got.items():
        assert_same_as_stored(ds, by_uid[uid], syntaxes)


def test_dicomtrolley_sends_its_quirks_and_they_are_accepted(world):
    """What dicomtrolley sends (rendered by dicomtrolley), and that the server answers it with every object."""
    rows = world["sample"]
    sent = dicomtrolley_request([reference(r) for r in rows])
    header = sent.find("{http://www.w3.org/2003/05/soap-envelope}Header")
    assert header.findtext("{http://www.w3.org/2005/08/addressing}Action").endswith(" ")
    body = sent.find("{http://www.w3.org/2003/05/soap-envelope}Body")
    assert (body.text or "").strip() == "response"
    assert len(body) == len({r["study_uid"] for r in rows}) > 1  # one request element per study
    rad69 = Rad69(world["session"], world["server"].endpoint, request_per_series=False)
    assert_all_as_stored(rad69.datasets([reference(r) for r in rows]), rows, world["syntaxes"])


@pytest.mark.parametrize("mode", ["per series (default)", "one request", "threads"])
def test_rad69_retrieves_every_instance(world, mode):
    rows = world["sample"] + [world["crlf"]]
    options = {"per series (default)": {}, "one request": {"request_per_series": False},
               "threads": {"use_async": True, "max_workers": 2}}[mode]
    rad69 = Rad69(world["session"], world["server"].endpoint, **options)
    assert_all_as_stored(rad69.datasets([reference(r) for r in rows]), rows, world["syntaxes"])


def test_trolley_finds_a_study_through_qido_rs_and_fetches_it_through_rad69(world):
    rows = world["sample"]
    study_uid = max({r["study_uid"] for r in rows}, key=lambda uid: sum(r["study_uid"] == uid for r in rows))
    study_rows = [r for r in rows if r["study_uid"] == study_uid]
    trolley = Trolley(searcher=QidoRS(world["session"], world["server"].url),
                      downloader=Rad69(world["session"], world["server"].endpoint))
    studies = trolley.find_studies(RelationalQuery(StudyInstanceUID=study_uid, query_level=QueryLevels.INSTANCE))
    assert [s.uid for s in studies] == [study_uid]
    found = sorted(instance.uid for series in studies[0].series for instance in series.instances)
    assert found == sorted(r["sop_instance_uid"] for r in study_rows)
    assert_all_as_stored(trolley.fetch_all_datasets(studies), study_rows, world["syntaxes"])


def test_trolley_fetches_a_series(world):
    rows = world["sample"]
    series_uid = max({r["series_uid"] for r in rows}, key=lambda uid: sum(r["series_uid"] == uid for r in rows))
    series_rows = [r for r in rows if r["series_uid"] == series_uid]
    assert len(series_rows) > 1
    trolley = Trolley(searcher=QidoRS(world["session"], world["server"].url),
                      downloader=Rad69(world["session"], world["server"].endpoint))
    [study] = trolley.find_studies(HierarchicalQuery(
        StudyInstanceUID=series_rows[0]["study_uid"], SeriesInstanceUID=series_uid, query_level=QueryLevels.INSTANCE))
    [series] = study.series
    assert series.uid == series_uid
    assert_all_as_stored(trolley.fetch_all_datasets([series]), series_rows, world["syntaxes"])


def test_get_dataset_of_one_instance_ending_in_cr_lf(world):
    rad69 = Rad69(world["session"], world["server"].endpoint)
    crlf = world["crlf"]
    assert crlf["path"].read_bytes().endswith(b"\r\n")
    assert_same_as_stored(rad69.get_dataset(reference(crlf)), crlf, world["syntaxes"])


def test_errors_in_an_mtom_answer_are_dropped_by_dicomtrolley_without_an_exception(world, tmp_path):
    """dicomtrolley looks for RegistryErrors only in a non-multipart answer; ours are always MTOM (ITI TF-2 V.8).
    An unknown document, or a server answering to another repository UID, therefore yields nothing and raises
    nothing on dicomtrolley's side, while the server did say why (checked on the same request, replayed)."""
    row = world["sample"][0]
    unknown = {**row, "sop_instance_uid": "1.2.3.4.5.6.7.8.9"}
    rad69 = Rad69(world["session"], world["server"].endpoint)
    got = [ds.SOPInstanceUID for ds in rad69.datasets([reference(row), reference(unknown)])]
    assert got == [row["sop_instance_uid"]]

    (tmp_path / "store").mkdir()
    shutil.copy(row["path"], tmp_path / "store" / "one.dcm")
    other = ServerProcess(tmp_path / "store", tmp_path / "data", tmp_path / "server.log", ["--unauthenticated", "full"])
    try:
        assert other.health()["repositoryUniqueId"] != world["repository"]
        elsewhere = Rad69(world["session"], other.endpoint)
        assert list(elsewhere.datasets([reference(row)])) == []
        replay = world["session"].post(other.endpoint, data=elsewhere.create_instances_request([reference(row)]),
                                       headers=elsewhere.post_headers, timeout=30)
        assert replay.status_code == 200 and replay.headers["Content-Type"].startswith("multipart/related")
        assert b'errorCode="XDSUnknownRepositoryId"' in replay.content
    finally:
        other.stop()
