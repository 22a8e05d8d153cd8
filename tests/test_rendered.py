"""RetrieveRenderedImagingDocumentSet through the real server: images and reports, every parameter, errors,
anonymized renderings."""

from __future__ import annotations

import io

import numpy as np
import pytest
import zeep
from lxml import etree
from PIL import Image

from support import RS, SOAP12, WADO, XDS, doc, envelope, post, validate_envelope
from wadows.sample import IDENTIFYING_STRINGS

ACTION = "urn:dicom:wado:ws:2011:RetrieveRenderedImagingDocumentSet"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"


def rendered_body(items: list[tuple[tuple[str, str, str], dict]]) -> str:
    out = [f'<wado:RetrieveRenderedImagingDocumentSetRequest xmlns:wado="{WADO}" xmlns:ihe="{XDS}">']
    for (study, series, sop), p in items:
        out.append(f'<wado:StudyRequest studyInstanceUID="{study}"><wado:SeriesRequest seriesInstanceUID="{series}">'
                   f'<wado:RenderedDocumentRequest><ihe:DocumentUniqueId>{sop}</ihe:DocumentUniqueId>')
        for name in ("Annotation", "Rows", "Columns"):
            if name in p:
                out.append(f"<wado:{name}>{p[name]}</wado:{name}>")
        if "Region" in p:
            region = p["Region"]
            inner = region if isinstance(region, str) else "".join(
                f"<wado:{k}>{v}</wado:{k}>" for k, v in zip(("XMin", "YMin", "XMax", "YMax"), region))
            out.append(f"<wado:Region>{inner}</wado:Region>")
        for name in ("WindowCenter", "WindowWidth", "ImageQuality", "PresentationUID", "PresentationSeriesUID",
                     "Anonymize", "FrameNumber"):
            if name in p:
                out.append(f"<wado:{name}>{p[name]}</wado:{name}>")
        out.append("<wado:ContentTypeList>" + "".join(
            f"<wado:ContentType>{t}</wado:ContentType>" for t in p.get("ContentType", ["image/jpeg"]))
            + "</wado:ContentTypeList>")
        if "Charset" in p:
            out.append("<wado:CharsetList>" + "".join(f"<wado:Charset>{c}</wado:Charset>" for c in p["Charset"])
                       + "</wado:CharsetList>")
        out.append("</wado:RenderedDocumentRequest></wado:SeriesRequest></wado:StudyRequest>")
    out.append("</wado:RetrieveRenderedImagingDocumentSetRequest>")
    return "".join(out)


def render(server, items):
    reply = post(server.endpoint, envelope(rendered_body(items), action=ACTION))
    assert reply.status == 200, reply.raw[:1000]
    mtom = reply.mtom()
    env = reply.envelope()
    validate_envelope(env, mtom.parts)
    body = env.find(f"{{{SOAP12}}}Body")[0]
    rr = body.find(f"{{{RS}}}RegistryResponse")
    errors = [dict(e.attrib) for e in rr.iter(f"{{{RS}}}RegistryError")]
    docs = []
    for d in body.findall(f"{{{WADO}}}RenderedDocumentResponse"):
        echo = {etree.QName(c).localname: (c.text if len(c) == 0 else [g.text for g in c]) for c in d}
        echo["data"] = mtom.parts[d.find(f"{{{XDS}}}Document")[0].get("href")[4:]]
        docs.append(echo)
    return reply, rr.get("status"), errors, docs


def row_of(sample, modality):
    return next(r for r in sample if r["modality"] == modality)


def image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("media,fmt", [("image/jpeg", "JPEG"), ("image/png", "PNG"), ("image/gif", "GIF")])
def test_each_image_type(server, sample, media, fmt):
    ct = row_of(sample, "CT")
    _, status, errors, docs = render(server, [(doc(ct), {"ContentType": [media]})])
    assert status == SUCCESS, errors
    assert docs[0]["mimeType"] == media and image(docs[0]["data"]).format == fmt
    assert docs[0]["SourceDocumentUniqueId"] == ct["sop_instance_uid"]
    assert (int(docs[0]["Rows"]), int(docs[0]["Columns"])) == image(docs[0]["data"]).size[::-1]


def test_unsupported_content_type_is_0006(server, sample):
    _, status, errors, docs = render(server, [(doc(row_of(sample, "CT")), {"ContentType": ["application/pdf"]})])
    assert docs == [] and errors[0]["errorCode"] == "urn:dicom:wado:0006"


def test_rows_columns_are_maxima_keeping_the_aspect_ratio(server, sample):
    mr = next(r for r in sample if r["modality"] == "MR" and r["series_description"].startswith("T2"))  # 300x484
    _, _, _, docs = render(server, [(doc(mr), {"Rows": 150, "Columns": 400, "ContentType": ["image/png"]})])
    width, height = image(docs[0]["data"]).size
    assert height <= 150 and width <= 400 and abs(width / height - 484 / 300) < 0.02


@pytest.mark.parametrize("region", ["0.5,0.5,1.0,1.0", ("0.5", "0.5", "1.0", "1.0")])
def test_region_in_both_forms(server, sample, region):
    ct = row_of(sample, "CT")  # 128x128
    _, status, errors, docs = render(server, [(doc(ct), {"Region": region, "ContentType": ["image/png"]})])
    assert status == SUCCESS, errors
    assert image(docs[0]["data"]).size == (64, 64)
    assert docs[0]["Region"] == ["0.5", "0.5", "1", "1"]


def test_window_changes_the_pixels_and_is_echoed(server, sample):
    ct = row_of(sample, "CT")
    _, _, _, narrow = render(server, [(doc(ct), {"WindowCenter": 40, "WindowWidth": 80, "ContentType": ["image/png"]})])
    _, _, _, wide = render(server, [(doc(ct), {"WindowCenter": 40, "WindowWidth": 4000, "ContentType": ["image/png"]})])
    assert (narrow[0]["WindowCenter"], narrow[0]["WindowWidth"]) == ("40", "80")
    assert not np.array_equal(np.asarray(image(narrow[0]["data"])), np.asarray(image(wide[0]["data"])))


@pytest.mark.parametrize("bad", [{"Rows": "zero"}, {"ImageQuality": 101}, {"WindowCenter": 40},
                                 {"Region": "0.5,0.5,0.2,1"}, {"Annotation": "everything"}, {"FrameNumber": "x"}])
def test_bad_parameter_values_are_0012(server, sample, bad):
    _, _, errors, docs = render(server, [(doc(row_of(sample, "CT")), bad)])
    assert docs == [] and errors[0]["errorCode"] == "urn:dicom:wado:0012"


def test_multi_frame_needs_a_frame_number_in_range(server, sample):
    us = row_of(sample, "US")  # 30 frames
    _, _, errors, _ = render(server, [(doc(us), {})])
    assert errors[0]["errorCode"] == "urn:dicom:wado:0008"
    _, _, errors, _ = render(server, [(doc(us), {"FrameNumber": 31})])
    assert errors[0]["errorCode"] == "urn:dicom:wado:0018"
    _, status, _, docs = render(server, [(doc(us), {"FrameNumber": 30, "ContentType": ["image/png"]})])
    assert status == SUCCESS and docs[0]["FrameNumber"] == "30"
    _, _, _, first = render(server, [(doc(us), {"FrameNumber": 1, "ContentType": ["image/png"]})])
    assert docs[0]["data"] != first[0]["data"]


def test_report_as_text_and_html_in_the_requested_charset(server, sample):
    sr = row_of(sample, "SR")
    _, status, errors, docs = render(server, [(doc(sr), {"ContentType": ["text/plain"], "Charset": ["iso-8859-1"]}),
                                              (doc(sr), {"ContentType": ["text/html"]})])
    assert status == SUCCESS, errors
    plain, html = docs
    assert plain["mimeType"].startswith("text/plain") and html["mimeType"].startswith("text/html")
    assert plain["data"].decode("iso-8859-1").strip() and b"<" in html["data"]
    # Patient data is drawn only when Annotation asks for it.
    family = row_of(sample, "SR")["patient_name"].split("^")[0].encode()
    assert family not in plain["data"]
    _, _, _, annotated = render(server, [(doc(sr), {"ContentType": ["text/plain"], "Annotation": "patient"})])
    assert family in annotated[0]["data"]


def test_anonymized_report_text_holds_no_identity(server, sample):
    sr = row_of(sample, "SR")
    reply, status, errors, docs = render(server, [(doc(sr), {"ContentType": ["text/plain"], "Anonymize": "yes",
                                                             "Annotation": "patient"})])
    assert status == SUCCESS and docs[0]["Anonymize"] == "yes"
    raw = reply.raw.lower()
    assert [s for s in IDENTIFYING_STRINGS if s.lower().encode() in raw] == []


def test_anonymized_rendering_is_refused_or_cleaned_like_the_object(server, sample, tmp_path):
    us = row_of(sample, "US")
    _, _, errors, _ = render(server, [(doc(us), {"FrameNumber": 1, "Anonymize": "yes"})])
    assert errors[0]["errorCode"] == "urn:dicom:wado:0001"


def test_presentation_state_is_applied_or_its_absence_reported(server, sample, gsps):
    ct = row_of(sample, "CT")
    _, status, errors, docs = render(server, [(doc(ct), {"PresentationUID": gsps["sop_instance_uid"],
                                                         "PresentationSeriesUID": gsps["series_uid"],
                                                         "ContentType": ["image/png"]})])
    assert status == SUCCESS, errors
    assert docs[0]["PresentationUID"] == gsps["sop_instance_uid"]
    _, _, errors, _ = render(server, [(doc(ct), {"PresentationUID": "1.2.3.4.404", "PresentationSeriesUID": "1.2.3"})])
    assert errors[0]["errorCode"] == "urn:dicom:wado:0019"
    _, _, errors, _ = render(server, [(doc(ct), {"PresentationUID": gsps["sop_instance_uid"],
                                                 "PresentationSeriesUID": "1.2.3.4.404"})])
    assert errors[0]["errorCode"] == "urn:dicom:wado:0020"


def test_zeep_renders_with_the_wsdl(server, sample):
    ct = row_of(sample, "CT")
    client = zeep.Client(f"{server.endpoint}?wsdl")
    result = client.service.ImagingDocumentSource_RetrieveRenderedImagingDocumentSet(StudyRequest=[{
        "studyInstanceUID": ct["study_uid"], "SeriesRequest": [{"seriesInstanceUID": ct["series_uid"],
        "RenderedDocumentRequest": [{"DocumentUniqueId": ct["sop_instance_uid"], "Rows": "64",
                                     "ContentTypeList": {"ContentType": ["image/jpeg"]}}]}]}])
    assert result.RegistryResponse.status == SUCCESS
    rendered = result.RenderedDocumentResponse[0]
    assert rendered.Rows == "64" and image(rendered.Document).size[1] == 64
